# A sink as a Lambda function: the same bootstrap serves SQS, Kinesis, MSK and
# self-managed Kafka batches and answers each with its partial-batch failure
# list, so every mapping asks for ReportBatchItemFailures.

data "aws_partition" "current" {}

locals {
  kafka = contains(["msk", "kafka"], var.trigger_type)

  # The host reads s3:// pipelines itself (built with the tag loaders.s3), so the role
  # needs that one object and nothing else of the bucket.
  pipeline_object_arn = startswith(var.pipeline, "s3://") ? "arn:${data.aws_partition.current.partition}:s3:::${trimprefix(var.pipeline, "s3://")}" : null

  # Lambda sets these itself and refuses a function that sets them (a
  # pipeline's ${AWS_REGION} reads Lambda's value).
  reserved = ["_HANDLER", "_X_AMZN_TRACE_ID", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_EXECUTION_ENV", "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR"]

  # Values set here win over var.environment: they are what makes this
  # function the component it is.
  environment = merge(
    { for k, v in var.environment : k => v if !contains(local.reserved, k) && !startswith(k, "AWS_LAMBDA_") },
    {
      RIVVEN_PIPELINE  = var.pipeline
      RIVVEN_CONNECTOR = var.connector
      RIVVEN_PAYLOAD   = var.payload_format
    },
    var.log_level == "" ? {} : { RIVVEN_LOG_LEVEL = var.log_level },
    var.redis_url == null ? {} : { REDIS_URL = var.redis_url },
  )

  secret_arns = compact(concat(var.secret_arns, [var.kafka_auth_secret_arn]))

  # Lambda attaches network interfaces for a function in a VPC, and its Kafka
  # pollers need to see the cluster's network.
  needs_network = length(var.subnet_ids) > 0 || local.kafka

  kafka_access = concat(
    var.trigger_type == "kafka" ? [for s in var.subnet_ids : { type = "VPC_SUBNET", uri = "subnet:${s}" }] : [],
    var.trigger_type == "kafka" ? [for g in var.security_group_ids : { type = "VPC_SECURITY_GROUP", uri = "security_group:${g}" }] : [],
    var.kafka_auth_secret_arn == null ? [] : [{ type = var.kafka_auth_type, uri = var.kafka_auth_secret_arn }],
  )
}

resource "aws_cloudwatch_log_group" "this" {
  name              = "/aws/lambda/${var.name}"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  name               = var.name
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

# Least privilege: the log group this module made, the trigger it reads, the
# dead-letter queues it writes (the mapping's and the transport's), the
# pipeline object and the secrets it names.
data "aws_iam_policy_document" "this" {
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }

  dynamic "statement" {
    for_each = var.trigger_type == "sqs" ? [1] : []
    content {
      sid       = "ReadQueue"
      actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"]
      resources = var.sqs_queue_arns
    }
  }

  dynamic "statement" {
    for_each = var.trigger_type == "kinesis" ? [1] : []
    content {
      sid       = "ReadStream"
      actions   = ["kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:ListShards", "kinesis:SubscribeToShard"]
      resources = var.kinesis_stream_arns
    }
  }

  dynamic "statement" {
    for_each = var.trigger_type == "msk" ? [1] : []
    content {
      sid     = "ReadMSK"
      actions = ["kafka:DescribeClusterV2", "kafka:GetBootstrapBrokers", "kafka-cluster:Connect", "kafka-cluster:DescribeClusterDynamicConfiguration", "kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup", "kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"]
      resources = [
        var.msk_cluster_arn,
        "${replace(var.msk_cluster_arn, ":cluster/", ":topic/")}/*",
        "${replace(var.msk_cluster_arn, ":cluster/", ":group/")}/*",
      ]
    }
  }

  dynamic "statement" {
    for_each = local.needs_network ? [1] : []
    content {
      sid       = "Network"
      actions   = ["ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups", "ec2:DescribeVpcs"]
      resources = ["*"]
    }
  }

  dynamic "statement" {
    for_each = var.trigger_type != "sqs" && var.dead_letter_arn != null ? [1] : []
    content {
      sid       = "DeadLetter"
      actions   = ["sqs:SendMessage"]
      resources = [var.dead_letter_arn]
    }
  }

  dynamic "statement" {
    for_each = length(var.publish_queue_arns) > 0 ? [1] : []
    content {
      sid       = "Publish"
      actions   = ["sqs:GetQueueUrl", "sqs:SendMessage"]
      resources = var.publish_queue_arns
    }
  }

  dynamic "statement" {
    for_each = length(local.secret_arns) > 0 ? [1] : []
    content {
      sid       = "Secrets"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = local.secret_arns
    }
  }

  dynamic "statement" {
    for_each = local.pipeline_object_arn == null ? [] : [local.pipeline_object_arn]
    content {
      sid       = "Pipeline"
      actions   = ["s3:GetObject"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "this" {
  name   = "rivven-sink"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.this.json
}

resource "aws_lambda_function" "this" {
  function_name                  = var.name
  role                           = aws_iam_role.this.arn
  runtime                        = "provided.al2023"
  architectures                  = ["arm64"]
  handler                        = "bootstrap"
  filename                       = var.package_file
  source_code_hash               = filebase64sha256(var.package_file)
  memory_size                    = var.memory_size
  timeout                        = var.timeout_seconds
  reserved_concurrent_executions = var.reserved_concurrency
  kms_key_arn                    = var.kms_key_arn

  environment {
    variables = local.environment
  }

  dynamic "vpc_config" {
    for_each = length(var.subnet_ids) > 0 ? [1] : []
    content {
      subnet_ids         = var.subnet_ids
      security_group_ids = var.security_group_ids
    }
  }

  tags = var.tags

  # The role must carry its policy before a cold start logs or reads.
  depends_on = [aws_iam_role_policy.this, aws_cloudwatch_log_group.this]
}

resource "aws_lambda_event_source_mapping" "sqs" {
  count = var.trigger_type == "sqs" ? length(var.sqs_queue_arns) : 0

  event_source_arn = var.sqs_queue_arns[count.index]
  function_name    = aws_lambda_function.this.arn
  batch_size       = var.batch_size
  # FIFO queues take no batching window.
  maximum_batching_window_in_seconds = endswith(var.sqs_queue_arns[count.index], ".fifo") ? null : var.batching_window_seconds
  function_response_types            = ["ReportBatchItemFailures"]

  dynamic "scaling_config" {
    for_each = var.maximum_concurrency == null ? [] : [var.maximum_concurrency]
    content {
      maximum_concurrency = scaling_config.value
    }
  }

  depends_on = [aws_iam_role_policy.this]
}

resource "aws_lambda_event_source_mapping" "kinesis" {
  count = var.trigger_type == "kinesis" ? length(var.kinesis_stream_arns) : 0

  event_source_arn                   = var.kinesis_stream_arns[count.index]
  function_name                      = aws_lambda_function.this.arn
  starting_position                  = var.starting_position
  batch_size                         = var.batch_size
  maximum_batching_window_in_seconds = var.batching_window_seconds
  maximum_retry_attempts             = var.maximum_retry_attempts
  function_response_types            = ["ReportBatchItemFailures"]

  dynamic "destination_config" {
    for_each = var.dead_letter_arn == null ? [] : [var.dead_letter_arn]
    content {
      on_failure {
        destination_arn = destination_config.value
      }
    }
  }

  depends_on = [aws_iam_role_policy.this]
}

resource "aws_lambda_event_source_mapping" "kafka" {
  count = local.kafka ? 1 : 0

  event_source_arn                   = var.trigger_type == "msk" ? var.msk_cluster_arn : null
  function_name                      = aws_lambda_function.this.arn
  topics                             = var.kafka_topics
  starting_position                  = var.starting_position
  batch_size                         = var.batch_size
  maximum_batching_window_in_seconds = var.batching_window_seconds
  function_response_types            = var.kafka_function_response_types

  dynamic "amazon_managed_kafka_event_source_config" {
    for_each = var.trigger_type == "msk" && var.kafka_consumer_group != null ? [var.kafka_consumer_group] : []
    content {
      consumer_group_id = amazon_managed_kafka_event_source_config.value
    }
  }

  dynamic "self_managed_event_source" {
    for_each = var.trigger_type == "kafka" ? [1] : []
    content {
      endpoints = {
        KAFKA_BOOTSTRAP_SERVERS = join(",", var.kafka_bootstrap_servers)
      }
    }
  }

  dynamic "self_managed_kafka_event_source_config" {
    for_each = var.trigger_type == "kafka" && var.kafka_consumer_group != null ? [var.kafka_consumer_group] : []
    content {
      consumer_group_id = self_managed_kafka_event_source_config.value
    }
  }

  dynamic "source_access_configuration" {
    for_each = local.kafka_access
    content {
      type = source_access_configuration.value.type
      uri  = source_access_configuration.value.uri
    }
  }

  dynamic "destination_config" {
    for_each = var.dead_letter_arn == null ? [] : [var.dead_letter_arn]
    content {
      on_failure {
        destination_arn = destination_config.value
      }
    }
  }

  depends_on = [aws_iam_role_policy.this]
}
