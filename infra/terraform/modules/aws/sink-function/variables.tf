variable "name" {
  type        = string
  description = "Function name; also names its IAM role and log group (/aws/lambda/<name>)."

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,64}$", var.name))
    error_message = "name: 1 to 64 letters, digits, hyphens or underscores (a Lambda function name)."
  }
}

variable "package_file" {
  type        = string
  description = "Path to the function zip built by `go tool task build` (dist/aws/sink-<connector>.zip: one `bootstrap` for provided.al2023 on arm64)."
}

variable "pipeline" {
  type        = string
  description = "RIVVEN_PIPELINE: an s3://bucket/key URL (the role is granted s3:GetObject on that object), a path inside the package, or the YAML itself."
}

variable "connector" {
  type        = string
  description = "RIVVEN_CONNECTOR: the sink this function is (sinks.<name>)."
}

variable "redis_url" {
  type        = string
  description = "REDIS_URL for the dedup ledger and circuit breaker, e.g. rediss://host:6379?cluster=true. Passed as a Lambda environment variable (encrypted at rest, with kms_key_arn when set): the host reads the URL itself and knows no secret references. Null leaves it out (settings.state.redis_url, else an embedded per-instance store)."
  default     = null
  sensitive   = true
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
  description = "More environment variables, e.g. the values of the pipeline file's $${VAR} references. RIVVEN_* and REDIS_URL set by this module win."
  default     = {}
  sensitive   = true
}

variable "memory_size" {
  type        = number
  description = "Memory in MB (CPU grows with it)."
  default     = 512
}

variable "timeout_seconds" {
  type        = number
  description = "Invocation timeout. Keep an SQS queue's visibility timeout at six times this or more."
  default     = 60
}

variable "reserved_concurrency" {
  type        = number
  description = "Reserved concurrent executions; -1 for none."
  default     = -1
}

variable "trigger_type" {
  type        = string
  description = "What triggers the function: sqs, kinesis, msk (Amazon MSK) or kafka (self-managed Kafka)."

  validation {
    condition     = contains(["sqs", "kinesis", "msk", "kafka"], var.trigger_type)
    error_message = "trigger_type: one of sqs, kinesis, msk, kafka."
  }
}

variable "sqs_queue_arns" {
  type        = list(string)
  description = "trigger_type sqs: the queues to consume (one event source mapping each). Dead letters go to each queue's redrive DLQ."
  default     = []
}

variable "kinesis_stream_arns" {
  type        = list(string)
  description = "trigger_type kinesis: the streams to consume (one event source mapping each)."
  default     = []
}

variable "msk_cluster_arn" {
  type        = string
  description = "trigger_type msk: the MSK cluster."
  default     = null
}

variable "kafka_bootstrap_servers" {
  type        = list(string)
  description = "trigger_type kafka: the self-managed cluster's bootstrap servers (host:port)."
  default     = []
}

variable "kafka_topics" {
  type        = list(string)
  description = "trigger_type msk or kafka: the topics to consume."
  default     = []
}

variable "kafka_consumer_group" {
  type        = string
  description = "trigger_type msk or kafka: the consumer group id (the sink's consumer_group)."
  default     = null
}

variable "kafka_auth_type" {
  type        = string
  description = "trigger_type msk or kafka: how Lambda authenticates to the brokers when kafka_auth_secret_arn is set (BASIC_AUTH, SASL_SCRAM_256_AUTH, SASL_SCRAM_512_AUTH, CLIENT_CERTIFICATE_TLS_AUTH)."
  default     = "SASL_SCRAM_512_AUTH"

  validation {
    condition     = contains(["BASIC_AUTH", "SASL_SCRAM_256_AUTH", "SASL_SCRAM_512_AUTH", "CLIENT_CERTIFICATE_TLS_AUTH"], var.kafka_auth_type)
    error_message = "kafka_auth_type: one of BASIC_AUTH, SASL_SCRAM_256_AUTH, SASL_SCRAM_512_AUTH, CLIENT_CERTIFICATE_TLS_AUTH."
  }
}

variable "kafka_auth_secret_arn" {
  type        = string
  description = "trigger_type msk or kafka: Secrets Manager secret with the broker credentials; null for MSK IAM auth or no auth."
  default     = null
}

variable "kafka_function_response_types" {
  type        = list(string)
  description = "trigger_type msk or kafka: the mapping's function_response_types. The function answers with per-partition batchItemFailures; set [] where a Kafka event source mapping does not take partial-batch responses, and a failed record then fails its whole batch."
  default     = ["ReportBatchItemFailures"]
}

variable "starting_position" {
  type        = string
  description = "kinesis, msk, kafka: where a new mapping starts (TRIM_HORIZON or LATEST)."
  default     = "TRIM_HORIZON"

  validation {
    condition     = contains(["TRIM_HORIZON", "LATEST"], var.starting_position)
    error_message = "starting_position: TRIM_HORIZON or LATEST."
  }
}

variable "batch_size" {
  type        = number
  description = "Records per invocation at most."
  default     = 100
}

variable "batching_window_seconds" {
  type        = number
  description = "How long the event source mapping gathers records before invoking (0-300; not used for FIFO queues)."
  default     = 1

  validation {
    condition     = var.batching_window_seconds >= 0 && var.batching_window_seconds <= 300
    error_message = "batching_window_seconds: 0 to 300."
  }
}

variable "maximum_concurrency" {
  type        = number
  description = "trigger_type sqs: most concurrent invocations per queue (2-1000); null for no limit."
  default     = null

  validation {
    condition     = var.maximum_concurrency == null || try(var.maximum_concurrency >= 2 && var.maximum_concurrency <= 1000, false)
    error_message = "maximum_concurrency: 2 to 1000, or null."
  }
}

variable "maximum_retry_attempts" {
  type        = number
  description = "kinesis: retries of a failed batch before it goes to dead_letter_arn; -1 retries until the record expires."
  default     = 10
}

variable "dead_letter_arn" {
  type        = string
  description = "kinesis, msk, kafka: SQS queue that takes records the function kept failing (the on-failure destination). SQS triggers dead-letter through their queue's redrive policy instead."
  default     = null
}

variable "publish_queue_arns" {
  type        = list(string)
  description = "SQS queues the function publishes to through broker.transport sqs: the dead-letter queues of its topics (the host dead-letters a record that fails settings.retry.max_retries + 1 deliveries there, saying why)."
  default     = []
}

variable "subnet_ids" {
  type        = list(string)
  description = "Subnets the function (and, for self-managed Kafka, the event pollers) run in, to reach Redis and private targets; empty for no VPC."
  default     = []
}

variable "security_group_ids" {
  type        = list(string)
  description = "Security groups of the function in the VPC (one must be allowed into Redis)."
  default     = []
}

variable "secret_arns" {
  type        = list(string)
  description = "Secrets Manager secrets the function may read (GetSecretValue), besides kafka_auth_secret_arn."
  default     = []
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key that encrypts the environment variables; null for the AWS managed key."
  default     = null
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
