variable "region" {
  type        = string
  description = "AWS region to deploy to."
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

variable "vpc_id" {
  type        = string
  description = "VPC of Redis, the functions and the services."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets (two or more zones, with a NAT or VPC endpoints) for Redis, the functions and the services."
}

variable "artifact_bucket" {
  type        = string
  description = "Existing S3 bucket the pipeline file is uploaded to; the functions read it from there."
}

variable "dist_dir" {
  type        = string
  description = "Where `go tool task build` wrote the functions (aws/<kind>-<name>.zip), relative to this directory or absolute."
  default     = "../../../../../dist"
}

variable "service_image" {
  type        = string
  description = "Image of the services: rivven-connect as entrypoint, the pipeline file at /etc/rivven/pipeline.yaml (see infra/terraform/README.md)."
}

variable "ecr_repository_arns" {
  type        = list(string)
  description = "ECR repositories service_image is pulled from (granted to the task execution role); empty for a public registry."
  default     = []
}

variable "log_level" {
  type        = string
  description = "Log level of every component (debug, info, warn, error); empty keeps settings.log_level."
  default     = ""
}

variable "pipeline_env" {
  type        = map(string)
  description = "Values of the pipeline's $${VAR} references by name, as environment variables of every function and service (each loads the whole file, so each needs every reference without a default). Lambda has no secret references, so secret values go here too (encrypted at rest)."
  default     = {}
  sensitive   = true
}

variable "pipeline_secrets" {
  type        = map(string)
  description = "Secret environment variables of the services: name => Secrets Manager secret ARN, filled by ECS at task start (a name here need not be in pipeline_env for the services)."
  default     = {}
}

variable "tags" {
  type        = map(string)
  description = "Tags for every resource."
  default     = {}
}

