output "host" {
  description = "The instance's private IP."
  value       = google_redis_instance.this.host
}

output "port" {
  description = "The instance's port."
  value       = google_redis_instance.this.port
}

output "redis_url_secret_id" {
  description = "Secret Manager secret (projects/<p>/secrets/<name>-redis-url) whose latest version is REDIS_URL."
  value       = google_secret_manager_secret.redis_url.id
}

output "redis_url" {
  description = "REDIS_URL, password included."
  value       = google_secret_manager_secret_version.redis_url.secret_data
  sensitive   = true
}
