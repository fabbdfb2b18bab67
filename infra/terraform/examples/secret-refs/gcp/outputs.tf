output "redis_url_secret_id" {
  description = "Secret Manager secret holding REDIS_URL."
  value       = module.state.redis_url_secret_id
}

output "topic_orders_id" {
  description = "Pub/Sub topic orders."
  value       = module.topic_orders.topic_id
}

output "topic_orders_dead_letter_subscription" {
  description = "Subscription holding the dead letters of orders."
  value       = module.topic_orders.dead_letter_subscription_id
}

output "source_orders_service" {
  description = "Service running source orders."
  value       = module.source_orders.service_name
}

output "sink_hook_service" {
  description = "Cloud Run service of sink hook."
  value       = module.sink_hook.service_name
}

output "sink_hook_service_account" {
  description = "Service account of sink hook, for what its connector needs."
  value       = module.sink_hook.service_account_email
}

