# A source as an ECS Fargate service running `rivven-connect run source NAME`.
#
# Deployment: one task, replaced stop-first (minimum healthy 0 %, maximum
# 100 %). ECS stops the old task (SIGTERM: it finishes its batch and commits
# its position) before it starts the new one, so two versions never overlap.
# Overlapping would buy nothing — a source has one writer, and a newer
# instance fences the older (exit 3) — and an overlapped rolling update lets
# ECS restart the fenced task of the old deployment, which would then fence
# the new one back. Fencing stays the safety net for the overlaps ECS does
# not plan: a task it lost track of, or one still running on a partitioned
# host.

data "aws_region" "current" {}

locals {
  command = concat(
    ["run", var.kind, var.connector_name, "-c", var.pipeline_path, "--json-logs"],
    var.log_level == "" ? [] : ["--log-level", var.log_level],
  )

  # A name filled from a secret is not also a plain variable (ECS refuses
  # the pair).
  plain       = merge(var.environment, var.redis_url == null ? {} : { REDIS_URL = var.redis_url })
  environment = { for k, v in local.plain : k => v if !contains(keys(var.secrets), k) }

  # IAM names the secret, not a JSON key or version inside it.
  secret_arns = distinct([for v in values(var.secrets) : regex("^(arn:[^:]+:secretsmanager:[^:]+:[^:]+:secret:[^:]+)", v)[0]])
}

resource "aws_cloudwatch_log_group" "this" {
  name              = "/ecs/${var.name}"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

# The execution role is what ECS uses to start the task: pull the image,
# fill the secrets, ship the logs.
resource "aws_iam_role" "execution" {
  name               = "${var.name}-exec"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
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
    for_each = length(var.ecr_repository_arns) > 0 ? [1] : []
    content {
      sid       = "PullToken"
      actions   = ["ecr:GetAuthorizationToken"]
      resources = ["*"]
    }
  }

  dynamic "statement" {
    for_each = length(var.ecr_repository_arns) > 0 ? [1] : []
    content {
      sid       = "Pull"
      actions   = ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"]
      resources = var.ecr_repository_arns
    }
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "rivven-exec"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# The task role is what the connector runs as.
resource "aws_iam_role" "task" {
  name               = "${var.name}-task"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "task" {
  count  = var.task_policy_json == null ? 0 : 1
  name   = "rivven-connector"
  role   = aws_iam_role.task.id
  policy = var.task_policy_json
}

# Publishing through broker.transport sqs: GetQueueUrl resolves a topic's
# queue by name, SendMessage(Batch) publishes. The queues exist (Terraform
# made them), so the transport never needs CreateQueue.
data "aws_iam_policy_document" "publish" {
  count = length(var.publish_queue_arns) > 0 ? 1 : 0

  statement {
    sid       = "Publish"
    actions   = ["sqs:GetQueueUrl", "sqs:SendMessage"]
    resources = var.publish_queue_arns
  }
}

resource "aws_iam_role_policy" "publish" {
  count  = length(var.publish_queue_arns) > 0 ? 1 : 0
  name   = "rivven-publish"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.publish[0].json
}

# The pipeline's aws-sm: references of this component, read by the
# connector (the task role), not by ECS: exactly those secrets.
data "aws_iam_policy_document" "secrets" {
  count = length(var.secret_arns) > 0 ? 1 : 0

  statement {
    sid       = "ReferencedSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = var.secret_arns
  }
}

resource "aws_iam_role_policy" "secrets" {
  count  = length(var.secret_arns) > 0 ? 1 : 0
  name   = "rivven-secrets"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.secrets[0].json
}

resource "aws_ecs_task_definition" "this" {
  family                   = var.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  container_definitions = jsonencode([{
    name        = var.kind
    image       = var.image
    essential   = true
    command     = local.command
    stopTimeout = var.stop_timeout_seconds
    environment = [for k in sort(keys(local.environment)) : { name = k, value = local.environment[k] }]
    secrets     = [for k in sort(keys(var.secrets)) : { name = k, valueFrom = var.secrets[k] }]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.this.name
        awslogs-region        = data.aws_region.current.name
        awslogs-stream-prefix = var.kind
      }
    }
  }])

  tags = var.tags
}

resource "aws_ecs_service" "this" {
  name             = var.name
  cluster          = var.cluster_arn
  task_definition  = aws_ecs_task_definition.this.arn
  desired_count    = 1
  launch_type      = "FARGATE"
  platform_version = "LATEST"
  propagate_tags   = "SERVICE"

  # Stop-first replacement; see the comment at the top of this file.
  deployment_minimum_healthy_percent = 0
  deployment_maximum_percent         = 100

  # A version that cannot start is rolled back to the last one that could.
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = var.security_group_ids
    assign_public_ip = var.assign_public_ip
  }

  tags = var.tags

  # The task publishes from its first batch on.
  depends_on = [aws_iam_role_policy.execution, aws_iam_role_policy.publish, aws_iam_role_policy.secrets]
}
