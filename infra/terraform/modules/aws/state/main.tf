# Redis for offsets, epochs, circuit breakers and delivery ledgers:
# ElastiCache Serverless (cluster mode, TLS only). Every piece of state lives
# under one hash tag per connector and changes by one Lua script, so a
# cluster is fine; clients connect with ?cluster=true.

resource "aws_security_group" "this" {
  name        = "${var.name}-redis"
  description = "ElastiCache Serverless ${var.name}: clients of rivven-connect only"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "clients" {
  count = length(var.client_security_group_ids)

  security_group_id            = aws_security_group.this.id
  referenced_security_group_id = var.client_security_group_ids[count.index]
  ip_protocol                  = "tcp"
  from_port                    = 6379
  to_port                      = 6380
  description                  = "Redis (primary 6379, readers 6380)"
}

resource "aws_elasticache_serverless_cache" "this" {
  name                     = var.name
  engine                   = var.engine
  major_engine_version     = var.major_engine_version
  description              = "rivven-connect state"
  subnet_ids               = var.subnet_ids
  security_group_ids       = [aws_security_group.this.id]
  snapshot_retention_limit = var.snapshot_retention_limit
  kms_key_id               = var.kms_key_arn
  user_group_id            = var.user_group_id

  cache_usage_limits {
    data_storage {
      maximum = var.max_data_storage_gb
      unit    = "GB"
    }
    ecpu_per_second {
      maximum = var.max_ecpu_per_second
    }
  }

  tags = var.tags
}
