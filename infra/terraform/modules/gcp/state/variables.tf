variable "name" {
  type        = string
  description = "Instance name; the Secret Manager secret holding REDIS_URL is <name>-redis-url."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,38}[a-z0-9]$", var.name))
    error_message = "name: 2 to 40 lowercase letters, digits or hyphens, a letter first."
  }
}

variable "project" {
  type        = string
  description = "Project; null for the provider's."
  default     = null
}

variable "region" {
  type        = string
  description = "Region of the instance (where the functions and services run)."
}

variable "network" {
  type        = string
  description = "VPC network (id or self link) the instance is reachable from; Cloud Run reaches it with Direct VPC egress."
}

variable "tier" {
  type        = string
  description = "BASIC (one node) or STANDARD_HA (a replica with automatic failover)."
  default     = "STANDARD_HA"

  validation {
    condition     = contains(["BASIC", "STANDARD_HA"], var.tier)
    error_message = "tier: BASIC or STANDARD_HA."
  }
}

variable "memory_size_gb" {
  type        = number
  description = "Memory in GB."
  default     = 1
}

variable "redis_version" {
  type        = string
  description = "Memorystore Redis version."
  default     = "REDIS_7_2"
}

variable "labels" {
  type        = map(string)
  description = "Labels for every resource."
  default     = {}
}
