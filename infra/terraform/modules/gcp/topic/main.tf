# A topic between a source and its sinks, with a dead-letter topic. The
# topic id is the pipeline's topic name: broker.transport pubsub publishes
# to the topic of that id in broker.pubsub.project_id, with no prefix. A
# Pub/Sub topic without a subscription drops what is published to it, so
# the dead-letter topic gets a pull subscription that keeps the dead
# letters until someone reads or replays them.

data "google_project" "this" {
  project_id = var.project
}

locals {
  # Pub/Sub's service agent moves messages to the dead-letter topic.
  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_pubsub_topic" "this" {
  name                       = var.name
  project                    = var.project
  message_retention_duration = var.message_retention
  kms_key_name               = var.kms_key_name
  labels                     = var.labels
}

# <name>.dlq is the default dead-letter topic of a source or sink on topic
# <name>: what broker.transport pubsub publishes dead letters to, and where
# the subscriptions' dead_letter_policy forwards, so both kinds meet here.
resource "google_pubsub_topic" "dead_letter" {
  name         = "${var.name}.dlq"
  project      = var.project
  kms_key_name = var.kms_key_name
  labels       = var.labels
}

resource "google_pubsub_subscription" "dead_letter" {
  name                       = "${var.name}.dlq"
  project                    = var.project
  topic                      = google_pubsub_topic.dead_letter.id
  message_retention_duration = var.dead_letter_retention
  retain_acked_messages      = false
  ack_deadline_seconds       = 60
  labels                     = var.labels

  # Never expire for inactivity: nobody reads dead letters until they must.
  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = google_pubsub_topic.dead_letter.project
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_agent
}
