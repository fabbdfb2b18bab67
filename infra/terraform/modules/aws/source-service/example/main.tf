# The datagen source of the quickstart as a Fargate service.
provider "aws" {
  region = "eu-west-1"
}

resource "aws_ecs_cluster" "this" {
  name = "example"
}

module "source" {
  source             = "../"
  name               = "example-orders"
  cluster_arn        = aws_ecs_cluster.this.arn
  image              = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/rivven-connect:1.0.0"
  connector_name     = "orders"
  redis_url          = "rediss://example.serverless.euw1.cache.amazonaws.com:6379?cluster=true"
  subnet_ids         = ["subnet-0123456789abcdef0"]
  security_group_ids = ["sg-0123456789abcdef0"]
  secrets = {
    PG_PASSWORD = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:example-pg-AbCdEf"
  }
  ecr_repository_arns = ["arn:aws:ecr:eu-west-1:123456789012:repository/rivven-connect"]
}

output "service" {
  description = "The example's service."
  value       = module.source.service_name
}
