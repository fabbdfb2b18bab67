variable "name" {
  type        = string
  description = "Cloud Run service name; its service account derives from it."

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
  description = "Container image whose entrypoint is rivven-connect and which holds the pipeline file at pipeline_path."
}

variable "kind" {
  type        = string
  description = "What `rivven-connect run` runs: source (the usual), or sink for a sink as a long-lived service on the Redis Streams transport."
  default     = "source"

  validation {
    condition     = contains(["source", "sink"], var.kind)
    error_message = "kind: source or sink."
  }
}

variable "connector_name" {
  type        = string
  description = "The pipeline's source (or sink) name: the command is `run <kind> <connector_name> -c <pipeline_path>`."
}

variable "pipeline_path" {
  type        = string
  description = "Path of the pipeline file inside the image."
  default     = "/etc/rivven/pipeline.yaml"
}

variable "health_port" {
  type        = number
  description = "settings.health.port of the pipeline (settings.health.enabled must be true): Cloud Run starts an instance once this port answers and restarts it when /live fails."
  default     = 8080
}

variable "log_level" {
  type        = string
  description = "--log-level: debug, info, warn or error; empty keeps settings.log_level."
  default     = ""

  validation {
    condition     = contains(["", "debug", "info", "warn", "error"], var.log_level)
    error_message = "log_level: one of debug, info, warn, error, or empty."
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

variable "cpu" {
  type        = string
  description = "CPU limit (always allocated)."
  default     = "1"
}

variable "memory" {
  type        = string
  description = "Memory limit."
  default     = "512Mi"
}

variable "network" {
  type        = string
  description = "VPC network for Direct VPC egress to Redis and the source's database; null for none."
  default     = null
}

variable "subnetwork" {
  type        = string
  description = "Subnetwork for Direct VPC egress; null for none."
  default     = null
}

variable "publish_topics" {
  type        = list(string)
  description = "Pub/Sub topics (projects/P/topics/T) the service publishes to through broker.transport pubsub (its topic and dead-letter topic): it may look them up (pubsub.topics.get, at start) and publish to them, nothing else."
  default     = []
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
