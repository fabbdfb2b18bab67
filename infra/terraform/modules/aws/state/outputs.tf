output "address" {
  description = "The cache endpoint's host name."
  value       = aws_elasticache_serverless_cache.this.endpoint[0].address
}

output "port" {
  description = "The cache endpoint's port."
  value       = aws_elasticache_serverless_cache.this.endpoint[0].port
}

output "redis_url" {
  description = "REDIS_URL for functions and services: TLS, cluster mode, no password (access is by security group)."
  value       = "rediss://${aws_elasticache_serverless_cache.this.endpoint[0].address}:${aws_elasticache_serverless_cache.this.endpoint[0].port}?cluster=true"
}

output "security_group_id" {
  description = "The cache's security group."
  value       = aws_security_group.this.id
}
