variable "name" {
  type        = string
  description = "Cloud Run service name; its service accounts and subscriptions derive from it."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,47}[a-z0-9]$", var.name))
    error_message = "name: 2 to 49 lowercase letters, digits or hyphens, a letter first (a Cloud Run service name)."
  }
}

variable "project" {
  type        = string
  description = "Project; null for the provider's."
  default     = null
}

variable "region" {
  type        = string
  description = "Region of the service."
}

variable "image" {
  type        = string
  description = "The function's image, built from dist/gcp/sink-<connector>/ (a static server on a distroless base)."
}

variable "pipeline" {
  type        = string
  description = "RIVVEN_PIPELINE: a gs://bucket/object URL (the service account may read that bucket's objects), a path inside the image, or the YAML itself."
}

variable "connector" {
  type        = string
  description = "RIVVEN_CONNECTOR: the sink this function is (sinks.<name>)."
}

variable "log_level" {
  type        = string
  description = "RIVVEN_LOG_LEVEL: debug, info, warn or error; empty keeps settings.log_level."
  default     = ""

  validation {
    condition     = contains(["", "debug", "info", "warn", "error"], var.log_level)
    error_message = "log_level: one of debug, info, warn, error, or empty."
  }
}

variable "payload_format" {
  type        = string
  description = "RIVVEN_PAYLOAD: how message bodies decode (auto, rivven, debezium, cloudevents, raw)."
  default     = "auto"

  validation {
    condition     = contains(["auto", "rivven", "debezium", "cloudevents", "raw"], var.payload_format)
    error_message = "payload_format: one of auto, rivven, debezium, cloudevents, raw."
  }
}

variable "environment" {
  type        = map(string)
  description = "Plain environment variables (values of the pipeline's $${VAR} references that are not secret)."
  default     = {}
}

variable "secret_env" {
  type        = map(string)
  description = "Environment variables filled from Secret Manager (latest version): name => secret id (projects/<p>/secrets/<s>). REDIS_URL usually comes this way."
  default     = {}
}

variable "topics" {
  type = list(object({
    topic             = string
    dead_letter_topic = string
  }))
  description = "The topics to consume, each with the dead-letter topic its subscription forwards to after max_delivery_attempts."
}

variable "max_delivery_attempts" {
  type        = number
  description = "Deliveries before Pub/Sub forwards a message to the dead-letter topic (5-100). Keep it above settings.retry.max_retries + 1, so that the handler's own dead-lettering (which says why) comes first."
  default     = 12

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "max_delivery_attempts: 5 to 100."
  }
}

variable "minimum_backoff" {
  type        = string
  description = "Retry policy: shortest wait before a nacked message is pushed again."
  default     = "10s"
}

variable "maximum_backoff" {
  type        = string
  description = "Retry policy: longest wait before a nacked message is pushed again (at most 600s)."
  default     = "600s"
}

variable "timeout_seconds" {
  type        = number
  description = "Request timeout of the service, and the subscriptions' ack deadline (10-600): Pub/Sub must not redeliver a push the service is still working on."
  default     = 300

  validation {
    condition     = var.timeout_seconds >= 10 && var.timeout_seconds <= 600
    error_message = "timeout_seconds: 10 to 600 (the longest ack deadline)."
  }
}

variable "cpu" {
  type        = string
  description = "CPU limit of an instance."
  default     = "1"
}

variable "memory" {
  type        = string
  description = "Memory limit of an instance."
  default     = "512Mi"
}

variable "concurrency" {
  type        = number
  description = "Pushes one instance takes at once. Pushes are handled in parallel but a sink writes one batch at a time unless it declares concurrent writes (drop, pubsub-sink, http-webhook, sqs-sink, kafka-sink, qdrant, pinecone, s3-vectors): for those 20 serves about 20x the events of 1 per instance at the same latency, for the others more than 1 only makes pushes queue behind a write (BenchmarkHandlerConcurrentPushes). The generated root sets 20 for sinks that write concurrently."
  default     = 1
}

variable "max_instance_count" {
  type        = number
  description = "Most instances."
  default     = 20
}

variable "network" {
  type        = string
  description = "VPC network for Direct VPC egress to Redis; null for none."
  default     = null
}

variable "subnetwork" {
  type        = string
  description = "Subnetwork for Direct VPC egress; null for none."
  default     = null
}

variable "ingress" {
  type        = string
  description = "Who may reach the service. Pub/Sub push from the same project counts as internal."
  default     = "INGRESS_TRAFFIC_INTERNAL_ONLY"

  validation {
    condition     = contains(["INGRESS_TRAFFIC_ALL", "INGRESS_TRAFFIC_INTERNAL_ONLY", "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"], var.ingress)
    error_message = "ingress: INGRESS_TRAFFIC_ALL, INGRESS_TRAFFIC_INTERNAL_ONLY or INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER."
  }
}

variable "deletion_protection" {
  type        = bool
  description = "Refuse to destroy the service."
  default     = false
}

variable "labels" {
  type        = map(string)
  description = "Labels for every resource."
  default     = {}
}

variable "secret_ids" {
  type        = list(string)
  description = "Secret Manager secrets the connector itself reads at start (the pipeline's gcp-sm: references of this component), projects/<p>/secrets/<s>: the runtime service account is their secretAccessor, and of no others."
  default     = []
}
