output "redis_url" {
  description = "REDIS_URL of the deployment (TLS, cluster mode, no password: the security group guards it)."
  value       = module.state.redis_url
}

output "topic_demo_orders_queue_url" {
  description = "SQS queue of topic demo.orders."
  value       = module.topic_demo_orders.queue_url
}

output "topic_demo_orders_dead_letter_url" {
  description = "Dead-letter queue of topic demo.orders."
  value       = module.topic_demo_orders.dead_letter_url
}

output "source_orders_service" {
  description = "Service running source orders."
  value       = module.source_orders.service_name
}

output "sink_console_function" {
  description = "Lambda function of sink console."
  value       = module.sink_console.function_name
}

output "sink_console_role" {
  description = "IAM role of sink console, for what its connector needs."
  value       = module.sink_console.role_name
}

