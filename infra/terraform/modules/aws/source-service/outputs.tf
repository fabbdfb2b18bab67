output "service_name" {
  description = "The ECS service's name."
  value       = aws_ecs_service.this.name
}

output "service_id" {
  description = "The ECS service's ARN."
  value       = aws_ecs_service.this.id
}

output "task_definition_arn" {
  description = "The task definition revision the service runs."
  value       = aws_ecs_task_definition.this.arn
}

output "task_role_name" {
  description = "The role the connector runs as, to attach what it needs."
  value       = aws_iam_role.task.name
}

output "execution_role_name" {
  description = "The role ECS starts the task with."
  value       = aws_iam_role.execution.name
}

output "log_group_name" {
  description = "CloudWatch log group of the service."
  value       = aws_cloudwatch_log_group.this.name
}
