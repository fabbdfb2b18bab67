# A source as a Cloud Run service running `rivven-connect run source NAME`:
# exactly one instance (min and max 1), its CPU always allocated because it
# works between requests — it serves none but its health port.
#
# A new revision overlaps the old one for a moment: the new instance takes a
# newer epoch, which fences the old one (its commits and publishes are
# refused; it exits with code 3) before Cloud Run retires it. So a rollout
# never has two writers, and a revision that cannot start leaves the old one
# serving.

locals {
  # Service account ids have 6 to 30 characters: a cut name could collide
  # with another service's, so a hash of the whole name follows it.
  account = "${trimsuffix(substr(var.name, 0, 20), "-")}-${substr(sha1(var.name), 0, 4)}"

  # Cloud Run sets these itself and refuses a service that sets them.
  reserved = ["PORT", "K_SERVICE", "K_REVISION", "K_CONFIGURATION"]

  # A name filled from a secret is not also a plain variable (Cloud Run
  # refuses the pair).
  environment = { for k, v in var.environment : k => v if !contains(keys(var.secret_env), k) && !contains(local.reserved, k) }

  args = concat(
    ["run", var.kind, var.connector_name, "-c", var.pipeline_path, "--json-logs"],
    var.log_level == "" ? [] : ["--log-level", var.log_level],
  )
}

resource "google_service_account" "runtime" {
  account_id   = "${local.account}-run"
  project      = var.project
  display_name = "rivven-connect ${var.name} (runs the ${var.kind})"
}

resource "google_secret_manager_secret_iam_member" "runtime" {
  for_each = var.secret_env

  project   = var.project
  secret_id = each.value
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.runtime.email}"
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
  ingress             = "INGRESS_TRAFFIC_INTERNAL_ONLY"
  deletion_protection = var.deletion_protection
  labels              = var.labels

  template {
    service_account = google_service_account.runtime.email

    scaling {
      min_instance_count = 1
      max_instance_count = 1
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
      args  = local.args

      ports {
        container_port = var.health_port
      }

      resources {
        limits = {
          cpu    = var.cpu
          memory = var.memory
        }
        cpu_idle          = false
        startup_cpu_boost = true
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

      startup_probe {
        period_seconds    = 5
        failure_threshold = 24
        tcp_socket {
          port = var.health_port
        }
      }

      liveness_probe {
        period_seconds    = 15
        failure_threshold = 4
        http_get {
          path = "/live"
          port = var.health_port
        }
      }
    }
  }

  # The service publishes from its first batch on.
  depends_on = [google_secret_manager_secret_iam_member.runtime, google_secret_manager_secret_iam_member.referenced, google_pubsub_topic_iam_member.publisher, google_pubsub_topic_iam_member.viewer]
}

# Publishing through broker.transport pubsub: at start the service checks
# that its topics exist (pubsub.topics.get, in roles/pubsub.viewer), then
# publishes (roles/pubsub.publisher). Both on those topics only; they exist
# (Terraform made them), so it never needs to create one.
resource "google_pubsub_topic_iam_member" "publisher" {
  count = length(var.publish_topics)

  project = var.project
  topic   = var.publish_topics[count.index]
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.runtime.email}"
}

resource "google_pubsub_topic_iam_member" "viewer" {
  count = length(var.publish_topics)

  project = var.project
  topic   = var.publish_topics[count.index]
  role    = "roles/pubsub.viewer"
  member  = "serviceAccount:${google_service_account.runtime.email}"
}
