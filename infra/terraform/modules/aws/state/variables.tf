variable "name" {
  type        = string
  description = "Cache name; its security group is <name>-redis."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,39}$", var.name))
    error_message = "name: a lowercase letter, then up to 39 lowercase letters, digits or hyphens."
  }
}

variable "vpc_id" {
  type        = string
  description = "VPC of the cache."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets the cache's endpoints live in (two or more, in different zones)."
}

variable "client_security_group_ids" {
  type        = list(string)
  description = "Security groups of the functions and services allowed to connect (ports 6379 and 6380)."
}

variable "engine" {
  type        = string
  description = "redis (Redis OSS) or valkey."
  default     = "redis"

  validation {
    condition     = contains(["redis", "valkey"], var.engine)
    error_message = "engine: redis or valkey."
  }
}

variable "major_engine_version" {
  type        = string
  description = "Major engine version."
  default     = "7"
}

variable "max_data_storage_gb" {
  type        = number
  description = "Upper bound of stored data in GB (offsets, epochs, breakers and ledgers are small)."
  default     = 5
}

variable "max_ecpu_per_second" {
  type        = number
  description = "Upper bound of ElastiCache Processing Units per second."
  default     = 15000
}

variable "snapshot_retention_limit" {
  type        = number
  description = "Daily snapshots kept; offsets and epochs are worth keeping."
  default     = 7
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key for data at rest; null for the AWS owned key."
  default     = null
}

variable "user_group_id" {
  type        = string
  description = "ElastiCache user group for Redis AUTH; null leaves access to the security group (then REDIS_URL carries no password)."
  default     = null
}

variable "tags" {
  type        = map(string)
  description = "Tags for every resource."
  default     = {}
}
