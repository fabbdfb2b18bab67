# Redis for a deployment whose functions and services share one security group.
provider "aws" {
  region = "eu-west-1"
}

resource "aws_security_group" "workloads" {
  name   = "example-workloads"
  vpc_id = "vpc-0123456789abcdef0"
}

module "state" {
  source                    = "../"
  name                      = "example-state"
  vpc_id                    = "vpc-0123456789abcdef0"
  subnet_ids                = ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
  client_security_group_ids = [aws_security_group.workloads.id]
}

output "redis_url" {
  description = "The example's redis url."
  value       = module.state.redis_url
}
