variable "name" {
  type        = string
  description = "Service name; also names its task definition family, roles (<name>-task, <name>-exec) and log group (/ecs/<name>)."

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,59}$", var.name))
    error_message = "name: 1 to 59 letters, digits, hyphens or underscores (room for the role suffixes)."
  }
}

variable "cluster_arn" {
  type        = string
  description = "ECS cluster the service runs in."
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

variable "log_level" {
  type        = string
  description = "--log-level: debug, info, warn or error; empty keeps settings.log_level."
  default     = ""

  validation {
    condition     = contains(["", "debug", "info", "warn", "error"], var.log_level)
    error_message = "log_level: one of debug, info, warn, error, or empty."
  }
}

variable "redis_url" {
  type        = string
  description = "REDIS_URL as a plain environment variable (no password in it, e.g. ElastiCache Serverless behind a security group); null to leave it out. A URL with a password belongs in secrets instead."
  default     = null
}

variable "environment" {
  type        = map(string)
  description = "Plain environment variables (the values of the pipeline's $${VAR} references that are not secret)."
  default     = {}
}

variable "secrets" {
  type        = map(string)
  description = "Environment variables filled by ECS from Secrets Manager at task start: name => secret ARN (or ARN:json-key::). The execution role may read exactly these secrets."
  default     = {}
}

variable "secret_arns" {
  type        = list(string)
  description = "Secrets Manager secrets the connector itself reads at start (the pipeline's aws-sm: references of this component): the task role may GetSecretValue exactly these. ARNs; a trailing -?????? matches the suffix Secrets Manager adds to a name."
  default     = []
}

variable "cpu" {
  type        = number
  description = "Fargate task CPU units (256 = 0.25 vCPU)."
  default     = 512
}

variable "memory" {
  type        = number
  description = "Fargate task memory in MiB."
  default     = 1024
}

variable "cpu_architecture" {
  type        = string
  description = "X86_64 or ARM64, matching the image."
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture: X86_64 or ARM64."
  }
}

variable "stop_timeout_seconds" {
  type        = number
  description = "Time between SIGTERM and SIGKILL (at most 120): the source finishes its batch and commits its position in it."
  default     = 60
}

variable "subnet_ids" {
  type        = list(string)
  description = "Subnets of the task (private subnets with a NAT or VPC endpoints for ECR, logs and Secrets Manager)."
}

variable "security_group_ids" {
  type        = list(string)
  description = "Security groups of the task (one must be allowed into Redis and the source's database)."
}

variable "assign_public_ip" {
  type        = bool
  description = "Give the task a public IP (only for public subnets without a NAT)."
  default     = false
}

variable "ecr_repository_arns" {
  type        = list(string)
  description = "ECR repositories the execution role may pull from; empty for a public registry."
  default     = []
}

variable "task_policy_json" {
  type        = string
  description = "IAM policy for what the connector itself calls (e.g. reading an SQS queue); null for none."
  default     = null
}

variable "publish_queue_arns" {
  type        = list(string)
  description = "SQS queues the task publishes to through broker.transport sqs (its topic's queue and dead-letter queue): the task role may look them up and send to them, nothing else."
  default     = []
}

variable "log_retention_days" {
  type        = number
  description = "CloudWatch log retention in days."
  default     = 30
}

variable "tags" {
  type        = map(string)
  description = "Tags for every resource."
  default     = {}
}
