package deploy

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// A GCP deployment with services turns settings.health on in its copy of
// the pipeline (Cloud Run starts an instance once its port answers, and a
// source serves nothing else), keeping the rest of the file as written;
// what it cannot edit safely is refused with the fix. AWS copies are left
// alone (ECS needs no port).
func TestGCPServicesServeTheirHealthPort(t *testing.T) {
	quick, err := os.ReadFile(examples[0].pipeline)
	if err != nil {
		t.Fatal(err)
	}
	sink := "sources:\n  o: {connector: datagen, topic: orders}\nsinks:\n  a: {connector: stdout, topics: [orders]}\n"
	cases := []struct {
		name, pipeline string
		port           int
		refused        string
	}{
		{"quickstart: settings without health", string(quick), 8080, ""},
		{"no settings", sink, 8080, ""},
		{"health without enabled", "settings:\n  log_level: info\n  health:\n    port: 9000\n" + sink, 9000, ""},
		{"health turned off", "settings:\n  health:\n    enabled: false\n" + sink, 0, "set settings.health.enabled: true"},
		{"flow settings", "settings: {log_level: info}\n" + sink, 0, "set settings.health.enabled: true"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, sinks := range []string{"function", "service"} {
				res, err := Generate(parse(t, []byte(c.pipeline)), []byte(c.pipeline), Options{Cloud: "gcp", Sinks: sinks, Modules: "../m"})
				if c.refused != "" {
					if err == nil || !strings.Contains(err.Error(), c.refused) || !strings.Contains(err.Error(), "never become ready") {
						t.Fatalf("%s: %v, want it refused with %q", sinks, err, c.refused)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				copy := string(res.Files[PipelineFile])
				q := parse(t, []byte(copy))
				if !q.Settings.Health.Enabled || q.Settings.Health.Port != c.port {
					t.Fatalf("%s: health %+v in\n%s", sinks, q.Settings.Health, copy)
				}
				// The user's lines are all still there, in order.
				rest := copy
				for _, line := range strings.Split(strings.TrimSpace(c.pipeline), "\n") {
					i := strings.Index(rest, line)
					if i < 0 {
						t.Fatalf("%s: the copy lost or moved %q:\n%s", sinks, line, copy)
					}
					rest = rest[i+len(line):]
				}
				if main := squeeze(string(res.Files["main.tf"])); !strings.Contains(main, "health_port = "+strconv.Itoa(c.port)) {
					t.Errorf("%s: main.tf does not probe port %d", sinks, c.port)
				}
			}
		})
	}
	res, err := Generate(parse(t, quick), quick, Options{Cloud: "aws", Modules: "../m"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(res.Files[PipelineFile]), "health") {
		t.Fatalf("the AWS copy got a health block:\n%s", res.Files[PipelineFile])
	}
}

// A GCP root enables the APIs it uses before anything that needs them.
func TestGCPRootEnablesItsAPIs(t *testing.T) {
	quick, err := os.ReadFile(examples[0].pipeline)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Generate(parse(t, quick), quick, Options{Cloud: "gcp", Modules: "../m"})
	if err != nil {
		t.Fatal(err)
	}
	main := squeeze(string(res.Files["main.tf"]))
	var quoted []string
	for _, api := range GCPServices {
		quoted = append(quoted, `"`+api+`"`)
	}
	want := `resource "google_project_service" "apis" { for_each = toset([` + strings.Join(quoted, ", ") + `]) project = var.project service = each.value disable_on_destroy = false }`
	if !strings.Contains(main, want) {
		t.Fatalf("main.tf lacks %s:\n%s", want, res.Files["main.tf"])
	}
	for _, api := range []string{"run.googleapis.com", "pubsub.googleapis.com", "redis.googleapis.com", "secretmanager.googleapis.com"} {
		if !strings.Contains(main, `"`+api+`"`) {
			t.Errorf("%s is not enabled", api)
		}
	}
	// Every module and resource of the root waits for the APIs.
	for _, head := range []string{`module "state" {`, `module "topic_demo_orders" {`, `module "source_orders" {`, `module "sink_console" {`, `resource "google_storage_bucket_object" "pipeline" {`} {
		i := strings.Index(main, head)
		if i < 0 {
			t.Fatalf("main.tf lacks %s", head)
		}
		body := main[i+len(head):]
		for _, next := range []string{`module "`, `resource "`, `output "`} {
			if j := strings.Index(body, next); j >= 0 {
				body = body[:j]
			}
		}
		if !strings.Contains(body, "depends_on = [google_project_service.apis]") {
			t.Errorf("%s does not wait for the APIs", head)
		}
	}
}
