output "redis_url" {
  description = "REDIS_URL of the deployment (TLS, cluster mode, no password: the security group guards it)."
  value       = module.state.redis_url
}

output "topic_cdc_orders_dead_letter_url" {
  description = "Dead-letter queue of topic cdc.orders."
  value       = module.topic_cdc_orders.dead_letter_url
}

output "source_pg_service" {
  description = "Service running source pg."
  value       = module.source_pg.service_name
}

output "sink_bigquery_function" {
  description = "Lambda function of sink bigquery."
  value       = module.sink_bigquery.function_name
}

output "sink_bigquery_role" {
  description = "IAM role of sink bigquery, for what its connector needs."
  value       = module.sink_bigquery.role_name
}

output "sink_databricks_function" {
  description = "Lambda function of sink databricks."
  value       = module.sink_databricks.function_name
}

output "sink_databricks_role" {
  description = "IAM role of sink databricks, for what its connector needs."
  value       = module.sink_databricks.role_name
}

output "sink_snowflake_function" {
  description = "Lambda function of sink snowflake."
  value       = module.sink_snowflake.function_name
}

output "sink_snowflake_role" {
  description = "IAM role of sink snowflake, for what its connector needs."
  value       = module.sink_snowflake.role_name
}

