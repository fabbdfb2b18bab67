output "redis_url" {
  description = "REDIS_URL of the deployment (TLS, cluster mode, no password: the security group guards it)."
  value       = module.state.redis_url
}

output "topic_orders_queue_url" {
  description = "SQS queue of topic orders."
  value       = module.topic_orders.queue_url
}

output "topic_orders_dead_letter_url" {
  description = "Dead-letter queue of topic orders."
  value       = module.topic_orders.dead_letter_url
}

output "source_orders_service" {
  description = "Service running source orders."
  value       = module.source_orders.service_name
}

output "sink_hook_function" {
  description = "Lambda function of sink hook."
  value       = module.sink_hook.function_name
}

output "sink_hook_role" {
  description = "IAM role of sink hook, for what its connector needs."
  value       = module.sink_hook.role_name
}

