output "redis_url_secret_id" {
  description = "Secret Manager secret holding REDIS_URL."
  value       = module.state.redis_url_secret_id
}

output "topic_cdc_shop_id" {
  description = "Pub/Sub topic cdc.shop."
  value       = module.topic_cdc_shop.topic_id
}

output "topic_cdc_shop_dead_letter_subscription" {
  description = "Subscription holding the dead letters of cdc.shop."
  value       = module.topic_cdc_shop.dead_letter_subscription_id
}

output "source_pg_service" {
  description = "Service running source pg."
  value       = module.source_pg.service_name
}

output "sink_lake_service" {
  description = "Cloud Run service of sink lake."
  value       = module.sink_lake.service_name
}

output "sink_lake_service_account" {
  description = "Service account of sink lake, for what its connector needs."
  value       = module.sink_lake.service_account_email
}

