# A stdout sink on an SQS queue with a dead-letter queue.
provider "aws" {
  region = "eu-west-1"
}

module "topic" {
  source = "../../topic"
  name   = "example-orders"
  type   = "sqs"
}

module "sink" {
  source              = "../"
  name                = "example-console"
  package_file        = "../../../../../../dist/aws/sink-stdout.zip"
  pipeline            = "s3://my-artifacts/example/pipeline.yaml"
  connector           = "sinks.console"
  redis_url           = "rediss://example.serverless.euw1.cache.amazonaws.com:6379?cluster=true"
  trigger_type        = "sqs"
  sqs_queue_arns      = [module.topic.queue_arn]
  batch_size          = 50
  maximum_concurrency = 10
}

output "function_arn" {
  description = "The example's function arn."
  value       = module.sink.function_arn
}
