output "redis_url_secret_id" {
  description = "Secret Manager secret holding REDIS_URL."
  value       = module.state.redis_url_secret_id
}

output "topic_cdc_orders_id" {
  description = "Pub/Sub topic cdc.orders."
  value       = module.topic_cdc_orders.topic_id
}

output "topic_cdc_orders_dead_letter_subscription" {
  description = "Subscription holding the dead letters of cdc.orders."
  value       = module.topic_cdc_orders.dead_letter_subscription_id
}

output "source_pg_service" {
  description = "Service running source pg."
  value       = module.source_pg.service_name
}

output "sink_bigquery_service" {
  description = "Cloud Run service of sink bigquery."
  value       = module.sink_bigquery.service_name
}

output "sink_bigquery_service_account" {
  description = "Service account of sink bigquery, for what its connector needs."
  value       = module.sink_bigquery.service_account_email
}

output "sink_databricks_service" {
  description = "Cloud Run service of sink databricks."
  value       = module.sink_databricks.service_name
}

output "sink_databricks_service_account" {
  description = "Service account of sink databricks, for what its connector needs."
  value       = module.sink_databricks.service_account_email
}

output "sink_snowflake_service" {
  description = "Cloud Run service of sink snowflake."
  value       = module.sink_snowflake.service_name
}

output "sink_snowflake_service_account" {
  description = "Service account of sink snowflake, for what its connector needs."
  value       = module.sink_snowflake.service_account_email
}

