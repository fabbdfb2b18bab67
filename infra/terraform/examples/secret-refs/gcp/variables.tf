variable "project" {
  type        = string
  description = "Google Cloud project to deploy to."
}

variable "region" {
  type        = string
  description = "Region of the services, topics' subscriptions and Redis."
}

variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name; distinct per deployment of the pipeline."
  default     = "rivven"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,19}$", var.name_prefix))
    error_message = "name_prefix: a lowercase letter, then up to 19 lowercase letters, digits or hyphens."
  }
}

variable "network" {
  type        = string
  description = "VPC network (id) Redis is reachable from."
}

variable "subnetwork" {
  type        = string
  description = "Subnetwork (id) of that network for the services' Direct VPC egress."
}

variable "artifact_bucket" {
  type        = string
  description = "Existing Cloud Storage bucket the pipeline file is uploaded to; the functions read it from there."
}

variable "image_registry" {
  type        = string
  description = "Artifact Registry repository the function images were pushed to (REGION-docker.pkg.dev/PROJECT/REPO); each image is named after its build context in dist/gcp/."
}

variable "image_tag" {
  type        = string
  description = "Tag of the function images."
}

variable "service_image" {
  type        = string
  description = "Image of the services: rivven-connect as entrypoint, the pipeline file at /etc/rivven/pipeline.yaml (see infra/terraform/README.md)."
}

variable "log_level" {
  type        = string
  description = "Log level of every component (debug, info, warn, error); empty keeps settings.log_level."
  default     = ""
}

variable "pipeline_env" {
  type        = map(string)
  description = "Values of the pipeline's $${VAR} references by name, as environment variables of every function and service (each loads the whole file, so each needs every reference without a default). Secret values belong in pipeline_secrets."
  default     = {}
}

variable "pipeline_secrets" {
  type        = map(string)
  description = "Secret environment variables of every function and service: name => Secret Manager secret id (projects/P/secrets/S), latest version."
  default     = {}
}

variable "labels" {
  type        = map(string)
  description = "Labels for every resource."
  default     = {}
}

