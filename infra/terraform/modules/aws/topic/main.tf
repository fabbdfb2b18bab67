# A topic between a source and its sinks: an SQS queue (standard or FIFO)
# with a redrive policy into a dead-letter queue, a Kinesis stream, or an
# existing Kafka topic. Every type gets an SQS dead-letter queue: the queue's
# redrive target, or the on-failure destination of a stream or Kafka event
# source mapping.

locals {
  sqs    = startswith(var.type, "sqs")
  fifo   = var.type == "sqs-fifo"
  suffix = local.fifo ? ".fifo" : ""

  # With topic, the queues are named the way broker.transport sqs looks them
  # up (Transport.QueueName in shared/topic/sqstopic): queue_prefix (here
  # name) + the topic with every character SQS refuses replaced by '-'. The
  # dead-letter queue is then the queue of the topic's default dead-letter
  # topic, <topic>.dlq, whose '.' becomes '-' the same way, so dead letters
  # a function publishes and those the redrive policy moves meet there.
  base             = var.topic == null ? var.name : "${var.name}${replace(var.topic, "/[^A-Za-z0-9_-]/", "-")}"
  queue_name       = "${local.base}${local.suffix}"
  dead_letter_name = "${local.base}-dlq${local.suffix}"
}

resource "aws_sqs_queue" "dead_letter" {
  name                      = local.dead_letter_name
  fifo_queue                = local.fifo ? true : null
  message_retention_seconds = var.dead_letter_retention_seconds
  sqs_managed_sse_enabled   = true
  tags                      = var.tags
}

resource "aws_sqs_queue" "this" {
  count = local.sqs ? 1 : 0

  name                        = local.queue_name
  fifo_queue                  = local.fifo ? true : null
  content_based_deduplication = local.fifo ? var.content_based_deduplication : null
  visibility_timeout_seconds  = var.visibility_timeout_seconds
  message_retention_seconds   = var.message_retention_seconds
  sqs_managed_sse_enabled     = true

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letter.arn
    maxReceiveCount     = var.max_receive_count
  })

  tags = var.tags
}

# Only this topic's queue may redrive into its dead-letter queue.
resource "aws_sqs_queue_redrive_allow_policy" "dead_letter" {
  count = local.sqs ? 1 : 0

  queue_url = aws_sqs_queue.dead_letter.id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.this[0].arn]
  })
}

resource "aws_kinesis_stream" "this" {
  count = var.type == "kinesis" ? 1 : 0

  name             = local.base
  shard_count      = var.kinesis_shard_count
  retention_period = var.kinesis_retention_hours
  encryption_type  = "KMS"
  kms_key_id       = "alias/aws/kinesis"

  stream_mode_details {
    stream_mode = var.kinesis_shard_count == null ? "ON_DEMAND" : "PROVISIONED"
  }

  tags = var.tags
}
