output "topic_id" {
  description = "The topic (projects/<project>/topics/<name>)."
  value       = google_pubsub_topic.this.id
}

output "topic_name" {
  description = "The topic's short name."
  value       = google_pubsub_topic.this.name
}

output "dead_letter_topic_id" {
  description = "The dead-letter topic, for subscriptions' dead_letter_policy."
  value       = google_pubsub_topic.dead_letter.id
}

output "dead_letter_subscription_id" {
  description = "The subscription holding the dead letters."
  value       = google_pubsub_subscription.dead_letter.id
}
