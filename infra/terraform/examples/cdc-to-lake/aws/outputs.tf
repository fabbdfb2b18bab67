output "redis_url" {
  description = "REDIS_URL of the deployment (TLS, cluster mode, no password: the security group guards it)."
  value       = module.state.redis_url
}

output "topic_cdc_shop_queue_url" {
  description = "SQS queue of topic cdc.shop."
  value       = module.topic_cdc_shop.queue_url
}

output "topic_cdc_shop_dead_letter_url" {
  description = "Dead-letter queue of topic cdc.shop."
  value       = module.topic_cdc_shop.dead_letter_url
}

output "source_pg_service" {
  description = "Service running source pg."
  value       = module.source_pg.service_name
}

output "sink_lake_function" {
  description = "Lambda function of sink lake."
  value       = module.sink_lake.function_name
}

output "sink_lake_role" {
  description = "IAM role of sink lake, for what its connector needs."
  value       = module.sink_lake.role_name
}

