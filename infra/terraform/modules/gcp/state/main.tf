# Redis for offsets, epochs, circuit breakers and delivery ledgers:
# Memorystore for Redis, reachable only from one VPC network and with AUTH
# on. In-transit encryption stays off: Memorystore signs its certificate
# with a per-instance CA that the functions do not carry, and the traffic
# does not leave the private network. The URL, password included, goes to
# Secret Manager, from where Cloud Run fills REDIS_URL.

resource "google_redis_instance" "this" {
  name                    = var.name
  project                 = var.project
  region                  = var.region
  tier                    = var.tier
  memory_size_gb          = var.memory_size_gb
  redis_version           = var.redis_version
  authorized_network      = var.network
  connect_mode            = "DIRECT_PEERING"
  auth_enabled            = true
  transit_encryption_mode = "DISABLED"
  labels                  = var.labels

  # Offsets and epochs must never be evicted to make room.
  redis_configs = {
    maxmemory-policy = "noeviction"
  }
}

resource "google_secret_manager_secret" "redis_url" {
  secret_id = "${var.name}-redis-url"
  project   = var.project
  labels    = var.labels

  replication {
    auto {}
  }
}

resource "google_secret_manager_secret_version" "redis_url" {
  secret      = google_secret_manager_secret.redis_url.id
  secret_data = "redis://:${urlencode(google_redis_instance.this.auth_string)}@${google_redis_instance.this.host}:${google_redis_instance.this.port}"
}
