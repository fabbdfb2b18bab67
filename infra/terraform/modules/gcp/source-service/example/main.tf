# The datagen source of the quickstart as an always-on Cloud Run service.
provider "google" {
  project = "my-project"
  region  = "europe-west1"
}

module "source" {
  source         = "../"
  name           = "example-orders"
  region         = "europe-west1"
  image          = "europe-west1-docker.pkg.dev/my-project/rivven/rivven-connect:1.0.0"
  connector_name = "orders"
  network        = "projects/my-project/global/networks/default"
  subnetwork     = "projects/my-project/regions/europe-west1/subnetworks/default"
  secret_env = {
    REDIS_URL = "projects/my-project/secrets/example-state-redis-url"
  }
}

output "service" {
  description = "The example's service."
  value       = module.source.service_name
}
