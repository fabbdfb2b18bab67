variable "name" {
  type        = string
  description = "Topic id: the pipeline's topic name, which broker.transport pubsub publishes to; the dead-letter topic and its subscription are <name>.dlq (the default dead_letter_topic)."

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9._~%+-]{2,250}$", var.name)) && !startswith(var.name, "goog")
    error_message = "name: 3 to 251 characters, a letter first, then letters, digits and - . _ ~ % +; not starting with goog."
  }
}

variable "project" {
  type        = string
  description = "Project; null for the provider's."
  default     = null
}

variable "message_retention" {
  type        = string
  description = "How long the topic keeps messages, for replay by seeking (e.g. 86400s); null for none."
  default     = null
}

variable "dead_letter_retention" {
  type        = string
  description = "How long the dead-letter subscription keeps undelivered dead letters (at most 604800s)."
  default     = "604800s"
}

variable "kms_key_name" {
  type        = string
  description = "Cloud KMS key for the topics; null for Google-managed encryption."
  default     = null
}

variable "labels" {
  type        = map(string)
  description = "Labels for every resource."
  default     = {}
}
