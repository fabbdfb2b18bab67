# A topic with its dead-letter topic and subscription.
provider "google" {
  project = "my-project"
  region  = "europe-west1"
}

module "orders" {
  source = "../"
  name   = "example-orders"
}

output "topic" {
  description = "The example's topic."
  value       = module.orders.topic_id
}
