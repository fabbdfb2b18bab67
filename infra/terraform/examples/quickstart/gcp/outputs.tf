output "redis_url_secret_id" {
  description = "Secret Manager secret holding REDIS_URL."
  value       = module.state.redis_url_secret_id
}

output "topic_demo_orders_id" {
  description = "Pub/Sub topic demo.orders."
  value       = module.topic_demo_orders.topic_id
}

output "topic_demo_orders_dead_letter_subscription" {
  description = "Subscription holding the dead letters of demo.orders."
  value       = module.topic_demo_orders.dead_letter_subscription_id
}

output "source_orders_service" {
  description = "Service running source orders."
  value       = module.source_orders.service_name
}

output "sink_console_service" {
  description = "Cloud Run service of sink console."
  value       = module.sink_console.service_name
}

output "sink_console_service_account" {
  description = "Service account of sink console, for what its connector needs."
  value       = module.sink_console.service_account_email
}

