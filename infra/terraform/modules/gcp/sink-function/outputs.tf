output "service_name" {
  description = "The Cloud Run service's name."
  value       = google_cloud_run_v2_service.this.name
}

output "service_uri" {
  description = "The service's URL (the push endpoint)."
  value       = google_cloud_run_v2_service.this.uri
}

output "service_account_email" {
  description = "The identity the sink runs as, to grant what its connector needs (e.g. objectCreator on the lake bucket)."
  value       = google_service_account.runtime.email
}

output "subscription_ids" {
  description = "The push subscriptions, one per topic."
  value       = google_pubsub_subscription.this[*].id
}
