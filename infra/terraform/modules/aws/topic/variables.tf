variable "name" {
  type        = string
  description = "Queue or stream name (.fifo is appended for sqs-fifo); the dead-letter queue is <name>-dlq. With topic, the prefix of the name (broker.sqs.queue_prefix; may be empty)."

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{0,70}$", var.name))
    error_message = "name: up to 70 letters, digits, hyphens or underscores (room for -dlq.fifo in an SQS name)."
  }
}

variable "topic" {
  type        = string
  description = "The pipeline topic this carries, for sources publishing through broker.transport sqs: the queue is then name + topic with every character outside [A-Za-z0-9_-] replaced by '-' (+ .fifo), exactly the queue the transport looks up, and the dead-letter queue that of <topic>.dlq. null: the queue is name."
  default     = null
}

variable "type" {
  type        = string
  description = "sqs (standard queue), sqs-fifo (ordered per message group, exactly-once send), kinesis (a stream), or kafka (an existing MSK or self-managed topic: only the dead-letter queue is created)."

  validation {
    condition     = contains(["sqs", "sqs-fifo", "kinesis", "kafka"], var.type)
    error_message = "type: one of sqs, sqs-fifo, kinesis, kafka."
  }
}

variable "visibility_timeout_seconds" {
  type        = number
  description = "SQS: how long a received message stays hidden; at least six times the consuming function's timeout."
  default     = 360
}

variable "message_retention_seconds" {
  type        = number
  description = "SQS: how long an unconsumed message is kept."
  default     = 345600
}

variable "max_receive_count" {
  type        = number
  description = "SQS: deliveries before a message moves to the dead-letter queue. Keep it above settings.retry.max_retries + 1, so that the handler's own dead-lettering (which says why) comes first."
  default     = 12
}

variable "content_based_deduplication" {
  type        = bool
  description = "sqs-fifo: deduplicate by body hash when a producer sends no deduplication id."
  default     = false
}

variable "dead_letter_retention_seconds" {
  type        = number
  description = "How long dead letters are kept (SQS maximum: 14 days)."
  default     = 1209600
}

variable "kinesis_shard_count" {
  type        = number
  description = "kinesis: shards of a provisioned stream; null for on-demand capacity."
  default     = null
}

variable "kinesis_retention_hours" {
  type        = number
  description = "kinesis: record retention in hours (24 to 8760)."
  default     = 24
}

variable "kafka_topic" {
  type        = string
  description = "kafka: the topic's name on the cluster; null means topic, or name without one."
  default     = null
}

variable "kafka_bootstrap_servers" {
  type        = list(string)
  description = "kafka: the cluster's bootstrap servers, handed through to consumers."
  default     = []
}

variable "tags" {
  type        = map(string)
  description = "Tags for every resource."
  default     = {}
}
