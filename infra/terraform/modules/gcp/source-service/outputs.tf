output "service_name" {
  description = "The Cloud Run service's name."
  value       = google_cloud_run_v2_service.this.name
}

output "service_account_email" {
  description = "The identity the source runs as, to grant what its connector needs."
  value       = google_service_account.runtime.email
}

output "latest_revision" {
  description = "The revision created last."
  value       = google_cloud_run_v2_service.this.latest_created_revision
}
