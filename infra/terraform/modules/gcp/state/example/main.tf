# Memorystore on the default network, its URL in Secret Manager.
provider "google" {
  project = "my-project"
  region  = "europe-west1"
}

module "state" {
  source  = "../"
  name    = "example-state"
  region  = "europe-west1"
  network = "projects/my-project/global/networks/default"
}

output "redis_url_secret" {
  description = "The example's redis url secret."
  value       = module.state.redis_url_secret_id
}
