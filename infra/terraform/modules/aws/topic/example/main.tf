# An ordered FIFO topic and a Kinesis topic, each with its dead-letter queue.
provider "aws" {
  region = "eu-west-1"
}

# Queues example-shop-orders.fifo and example-shop-orders-dlq.fifo: what
# broker.sqs {queue_prefix: "example-", fifo: true} publishes topic
# shop.orders (and its dead letters) to.
module "orders" {
  source = "../"
  name   = "example-"
  topic  = "shop.orders"
  type   = "sqs-fifo"
}

module "clicks" {
  source = "../"
  name   = "example-clicks"
  type   = "kinesis"
}

output "orders_queue" {
  description = "The example's orders queue."
  value       = module.orders.queue_url
}

output "clicks_stream" {
  description = "The example's clicks stream."
  value       = module.clicks.stream_arn
}
