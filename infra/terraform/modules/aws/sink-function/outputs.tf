output "function_name" {
  description = "The Lambda function's name."
  value       = aws_lambda_function.this.function_name
}

output "function_arn" {
  description = "The Lambda function's ARN."
  value       = aws_lambda_function.this.arn
}

output "role_name" {
  description = "The function's IAM role, to attach what its connector needs (e.g. s3:PutObject on the lake bucket)."
  value       = aws_iam_role.this.name
}

output "role_arn" {
  description = "ARN of the function's IAM role."
  value       = aws_iam_role.this.arn
}

output "log_group_name" {
  description = "CloudWatch log group of the function."
  value       = aws_cloudwatch_log_group.this.name
}

output "event_source_mapping_ids" {
  description = "UUIDs of the event source mappings."
  value       = concat(aws_lambda_event_source_mapping.sqs[*].uuid, aws_lambda_event_source_mapping.kinesis[*].uuid, aws_lambda_event_source_mapping.kafka[*].uuid)
}
