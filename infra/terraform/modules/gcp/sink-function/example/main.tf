# A stdout sink pushed from one topic, REDIS_URL from Secret Manager.
provider "google" {
  project = "my-project"
  region  = "europe-west1"
}

module "topic" {
  source = "../../topic"
  name   = "example-orders"
}

module "sink" {
  source    = "../"
  name      = "example-console"
  region    = "europe-west1"
  image     = "europe-west1-docker.pkg.dev/my-project/rivven/sink-stdout:1.0.0"
  pipeline  = "gs://my-artifacts/example/pipeline.yaml"
  connector = "sinks.console"
  topics = [{
    topic             = module.topic.topic_id
    dead_letter_topic = module.topic.dead_letter_topic_id
  }]
  secret_env = {
    REDIS_URL = "projects/my-project/secrets/example-state-redis-url"
  }
}

output "service_uri" {
  description = "The example's service uri."
  value       = module.sink.service_uri
}
