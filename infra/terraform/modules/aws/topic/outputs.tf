output "trigger_type" {
  description = "The sink-function trigger_type that consumes this topic (sqs, kinesis or kafka; use msk for an MSK cluster)."
  value       = local.sqs ? "sqs" : var.type
}

output "queue_arn" {
  description = "sqs, sqs-fifo: the queue's ARN (null otherwise)."
  value       = one(aws_sqs_queue.this[*].arn)
}

output "queue_name" {
  description = "sqs, sqs-fifo: the queue's name (null otherwise)."
  value       = one(aws_sqs_queue.this[*].name)
}

output "queue_url" {
  description = "sqs, sqs-fifo: the queue's URL (null otherwise)."
  value       = one(aws_sqs_queue.this[*].url)
}

output "stream_arn" {
  description = "kinesis: the stream's ARN (null otherwise)."
  value       = one(aws_kinesis_stream.this[*].arn)
}

output "kafka_topic" {
  description = "kafka: the topic's name on the cluster (null otherwise)."
  value       = var.type == "kafka" ? coalesce(var.kafka_topic, var.topic, var.name) : null
}

output "kafka_bootstrap_servers" {
  description = "kafka: the cluster's bootstrap servers."
  value       = var.kafka_bootstrap_servers
}

output "dead_letter_arn" {
  description = "The dead-letter queue's ARN."
  value       = aws_sqs_queue.dead_letter.arn
}

output "dead_letter_url" {
  description = "The dead-letter queue's URL, to inspect or redrive it."
  value       = aws_sqs_queue.dead_letter.url
}
