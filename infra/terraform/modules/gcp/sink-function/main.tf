# A sink as a Cloud Run service fed by Pub/Sub push subscriptions. Each push
# carries an OIDC token of an invoker service account, the only identity
# allowed to call the service. A 2xx acknowledges; anything else is retried
# with backoff, and after max_delivery_attempts the message goes to the
# topic's dead-letter topic.

data "google_project" "this" {
  project_id = var.project
}

locals {
  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"

  # Service account ids have 6 to 30 characters: a cut name could collide
  # with another service's, so a hash of the whole name follows it.
  account = "${trimsuffix(substr(var.name, 0, 20), "-")}-${substr(sha1(var.name), 0, 4)}"

  # Cloud Run sets these itself and refuses a service that sets them.
  reserved = ["PORT", "K_SERVICE", "K_REVISION", "K_CONFIGURATION"]

  # A name filled from a secret is not also a plain variable (Cloud Run
  # refuses the pair).
  plain = merge(
    { for k, v in var.environment : k => v if !contains(local.reserved, k) },
    {
      RIVVEN_PIPELINE  = var.pipeline
      RIVVEN_CONNECTOR = var.connector
      RIVVEN_PAYLOAD   = var.payload_format
    },
    var.log_level == "" ? {} : { RIVVEN_LOG_LEVEL = var.log_level },
  )
  environment = { for k, v in local.plain : k => v if !contains(keys(var.secret_env), k) }

  pipeline_bucket = startswith(var.pipeline, "gs://") ? split("/", trimprefix(var.pipeline, "gs://"))[0] : null
}

resource "google_service_account" "runtime" {
  account_id   = "${local.account}-run"
  project      = var.project
  display_name = "rivven-connect ${var.name} (runs the sink)"
}

resource "google_service_account" "invoker" {
  account_id   = "${local.account}-inv"
  project      = var.project
  display_name = "rivven-connect ${var.name} (Pub/Sub push identity)"
}

resource "google_secret_manager_secret_iam_member" "runtime" {
  for_each = var.secret_env

  project   = var.project
  secret_id = each.value
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.runtime.email}"
}

resource "google_storage_bucket_iam_member" "pipeline" {
  count = local.pipeline_bucket == null ? 0 : 1

  bucket = local.pipeline_bucket
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.runtime.email}"
}

# The pipeline's gcp-sm: references of this component: read by the
# connector at start with the runtime identity.
resource "google_secret_manager_secret_iam_member" "referenced" {
  for_each = toset(var.secret_ids)

  project   = split("/", each.value)[1]
  secret_id = each.value
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.runtime.email}"
}

resource "google_cloud_run_v2_service" "this" {
  name                = var.name
  project             = var.project
  location            = var.region
  ingress             = var.ingress
  deletion_protection = var.deletion_protection
  labels              = var.labels

  template {
    service_account                  = google_service_account.runtime.email
    timeout                          = "${var.timeout_seconds}s"
    max_instance_request_concurrency = var.concurrency

    scaling {
      min_instance_count = 0
      max_instance_count = var.max_instance_count
    }

    dynamic "vpc_access" {
      for_each = var.subnetwork == null ? [] : [var.subnetwork]
      content {
        egress = "PRIVATE_RANGES_ONLY"
        network_interfaces {
          network    = var.network
          subnetwork = vpc_access.value
        }
      }
    }

    containers {
      image = var.image

      resources {
        limits = {
          cpu    = var.cpu
          memory = var.memory
        }
        cpu_idle = true
      }

      dynamic "env" {
        for_each = local.environment
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = var.secret_env
        content {
          name = env.key
          value_source {
            secret_key_ref {
              secret  = env.value
              version = "latest"
            }
          }
        }
      }
    }
  }

  # A revision whose secrets or pipeline cannot be read fails its cold start.
  depends_on = [google_secret_manager_secret_iam_member.runtime, google_secret_manager_secret_iam_member.referenced, google_storage_bucket_iam_member.pipeline]
}

resource "google_cloud_run_v2_service_iam_member" "invoker" {
  project  = google_cloud_run_v2_service.this.project
  location = google_cloud_run_v2_service.this.location
  name     = google_cloud_run_v2_service.this.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.invoker.email}"
}

# Pub/Sub mints the push tokens of the invoker account.
resource "google_service_account_iam_member" "token_creator" {
  service_account_id = google_service_account.invoker.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}

resource "google_pubsub_subscription" "this" {
  count = length(var.topics)

  name                 = length(var.topics) == 1 ? var.name : "${var.name}-${count.index}"
  project              = var.project
  topic                = var.topics[count.index].topic
  ack_deadline_seconds = var.timeout_seconds
  labels               = var.labels

  push_config {
    push_endpoint = google_cloud_run_v2_service.this.uri

    oidc_token {
      service_account_email = google_service_account.invoker.email
      audience              = google_cloud_run_v2_service.this.uri
    }
  }

  retry_policy {
    minimum_backoff = var.minimum_backoff
    maximum_backoff = var.maximum_backoff
  }

  dead_letter_policy {
    dead_letter_topic     = var.topics[count.index].dead_letter_topic
    max_delivery_attempts = var.max_delivery_attempts
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [google_cloud_run_v2_service_iam_member.invoker, google_service_account_iam_member.token_creator]
}

# Pub/Sub acknowledges a dead-lettered message on the source subscription
# as its service agent.
resource "google_pubsub_subscription_iam_member" "dead_letter" {
  count = length(var.topics)

  project      = google_pubsub_subscription.this[count.index].project
  subscription = google_pubsub_subscription.this[count.index].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

# With broker.transport pubsub the function publishes its own dead letters
# (after settings.retry.max_retries + 1 attempts, with the reason) to each
# topic's dead-letter topic: publish there and nowhere else.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  count = length(var.topics)

  project = var.project
  topic   = var.topics[count.index].dead_letter_topic
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.runtime.email}"
}
