package databricks

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"

	"github.com/rivven/rivven-connect/shared/spec"
)

// Config is the databricks sink's config block: the reference's keys
// with its defaults, and record_type.
type Config struct {
	Endpoint            string         `yaml:"endpoint" required:"true" doc:"Zerobus API endpoint: <workspace-id>.zerobus.<region>.cloud.databricks.com (AWS), .azuredatabricks.net (Azure) or .gcp.databricks.com (GCP), optionally with https:// and a port. http:// only for a loopback host (local tests)."`
	UnityCatalogURL     string         `yaml:"unity_catalog_url" required:"true" doc:"Workspace URL for OAuth and the table's schema: https://<workspace>.cloud.databricks.com, https://<workspace>.azuredatabricks.net or https://<workspace>.gcp.databricks.com, on the same cloud as endpoint."`
	TableName           string         `yaml:"table_name" required:"true" doc:"Fully qualified Unity Catalog table name (catalog.schema.table); the table must exist."`
	ClientID            string         `yaml:"client_id" required:"true" doc:"OAuth 2.0 client ID of the service principal."`
	ClientSecret        string         `yaml:"client_secret" required:"true" secret:"true" doc:"OAuth 2.0 client secret of the service principal (use ${VAR} or a secret reference)."`
	RecordType          string         `yaml:"record_type" default:"json" enum:"json,proto" doc:"How records travel: json sends each row as a JSON object; proto encodes each row as protobuf with a descriptor built from the table's Unity Catalog schema (primitive column types only)."`
	BatchSize           int            `yaml:"batch_size" default:"500" min:"1" max:"100000" doc:"Records per batch (all-or-nothing): a long-lived runner gathers up to this many events per Zerobus batch."`
	FlushIntervalSecs   int            `yaml:"flush_interval_secs" default:"5" min:"0" doc:"Maximum seconds before a partial batch is flushed."`
	MaxInflightRequests int            `yaml:"max_inflight_requests" default:"100000" min:"1" doc:"Maximum records sent and not yet acknowledged; a write waits for acknowledgements above it."`
	WaitForAck          bool           `yaml:"wait_for_ack" default:"true" doc:"Return from a batch only once Zerobus acknowledged its offset (durable), so the trigger is acknowledged only after the server's. false returns once sent: acknowledgements are tracked in the background and close waits for them (up to flush_timeout_ms)."`
	Recovery            bool           `yaml:"recovery" default:"true" doc:"Recover the stream on transient failures: open a new stream and send again every batch not yet acknowledged."`
	RecoveryRetries     int            `yaml:"recovery_retries" default:"4" min:"0" max:"100" doc:"Maximum stream recovery attempts per failure."`
	RecoveryTimeoutMs   int            `yaml:"recovery_timeout_ms" default:"15000" min:"1" doc:"Timeout per recovery attempt (ms): opening the stream and creating it on the server."`
	RecoveryBackoffMs   int            `yaml:"recovery_backoff_ms" default:"2000" min:"0" doc:"Backoff between recovery attempts (ms)."`
	ServerAckTimeoutMs  int            `yaml:"server_ack_timeout_ms" default:"60000" min:"1" doc:"Time without an acknowledgement for a sent batch after which the stream counts as failed and is recovered (ms)."`
	FlushTimeoutMs      int            `yaml:"flush_timeout_ms" default:"300000" min:"1" doc:"Longest wait for acknowledgements of one batch, and of everything in flight at close (ms)."`
	MaxBatchRetries     int            `yaml:"max_batch_retries" default:"2" min:"0" max:"100" doc:"Connector-level retries per batch on retryable errors, on top of stream recovery (0 disables)."`
	InitialBackoffMs    int            `yaml:"initial_backoff_ms" default:"200" min:"1" doc:"Initial backoff between batch retries (ms), doubled per retry with jitter."`
	MaxBackoffMs        int            `yaml:"max_backoff_ms" default:"5000" min:"1" doc:"Maximum backoff between batch retries (ms)."`
	CircuitBreaker      CircuitBreaker `yaml:"circuit_breaker" doc:"This instance's circuit breaker (the reference's); the engine's sinks.<name>.circuit_breaker, shared by all instances, applies as for every sink."`
}

// CircuitBreaker is the reference's per-connector breaker.
type CircuitBreaker struct {
	Enabled          bool `yaml:"enabled" default:"true" doc:"Enable the circuit breaker for batch failures."`
	FailureThreshold int  `yaml:"failure_threshold" default:"5" min:"1" max:"100" doc:"Consecutive failed batches before the circuit opens."`
	ResetTimeoutSecs int  `yaml:"reset_timeout_secs" default:"30" min:"1" max:"3600" doc:"Seconds the circuit stays open before a half-open probe batch."`
	SuccessThreshold int  `yaml:"success_threshold" default:"2" min:"1" max:"10" doc:"Successful probes that close the circuit from half-open."`
}

// Cloud is the cloud a workspace runs on, told by its host names.
type Cloud string

const (
	AWS   Cloud = "aws"
	Azure Cloud = "azure"
	GCP   Cloud = "gcp"
	Local Cloud = "local" // a loopback host: tests and local emulators
)

var (
	// <workspace-id>.zerobus.<region>.<cloud domain>
	zerobusHostRE = regexp.MustCompile(`^([a-z0-9][a-z0-9-]*)\.zerobus\.([a-z0-9][a-z0-9-]*)\.(cloud\.databricks\.com|azuredatabricks\.net|gcp\.databricks\.com)$`)
	// <workspace>.<cloud domain>
	workspaceHostRE = regexp.MustCompile(`^([a-z0-9][a-z0-9-]*(?:\.[a-z0-9][a-z0-9-]*)*)\.(cloud\.databricks\.com|azuredatabricks\.net|gcp\.databricks\.com)$`)
	tablePartRE     = regexp.MustCompile("^[A-Za-z0-9_][A-Za-z0-9_-]*$")
	clouds          = map[string]Cloud{"cloud.databricks.com": AWS, "azuredatabricks.net": Azure, "gcp.databricks.com": GCP}
)

// endpointInfo is a parsed Zerobus endpoint.
type endpointInfo struct {
	cloud       Cloud
	workspaceID string
	target      string // host:port to dial
	plaintext   bool   // loopback http://
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// parseEndpoint checks a Zerobus endpoint's format: a host of the form
// the reference gives for each cloud, or a loopback host for tests.
func parseEndpoint(s string) (endpointInfo, error) {
	s = strings.TrimSpace(s)
	raw := s
	if !strings.Contains(s, "://") {
		raw = "https://" + s
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return endpointInfo{}, fmt.Errorf("not a host name: want <workspace-id>.zerobus.<region>.cloud.databricks.com (AWS), .azuredatabricks.net (Azure) or .gcp.databricks.com (GCP)")
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if isLoopback(host) {
		if port == "" {
			return endpointInfo{}, fmt.Errorf("a loopback endpoint needs a port")
		}
		return endpointInfo{cloud: Local, workspaceID: "local", target: net.JoinHostPort(host, port), plaintext: u.Scheme == "http"}, nil
	}
	if u.Scheme != "https" {
		return endpointInfo{}, fmt.Errorf("scheme %q: Zerobus is reached over TLS (https, or no scheme); http only for a loopback host", u.Scheme)
	}
	m := zerobusHostRE.FindStringSubmatch(host)
	if m == nil {
		return endpointInfo{}, fmt.Errorf("host %q is not <workspace-id>.zerobus.<region>.cloud.databricks.com (AWS), .azuredatabricks.net (Azure) or .gcp.databricks.com (GCP)", host)
	}
	if port == "" {
		port = "443"
	}
	return endpointInfo{cloud: clouds[m[3]], workspaceID: m[1], target: net.JoinHostPort(host, port)}, nil
}

// parseWorkspaceURL checks the Unity Catalog (workspace) URL and returns
// its cloud and the URL without a trailing slash.
func parseWorkspaceURL(s string) (Cloud, string, error) {
	s = strings.TrimRight(strings.TrimSpace(s), "/")
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
		return "", "", fmt.Errorf("must be the workspace URL, like https://<workspace>.cloud.databricks.com")
	}
	host := strings.ToLower(u.Hostname())
	if isLoopback(host) {
		if u.Scheme != "http" && u.Scheme != "https" {
			return "", "", fmt.Errorf("scheme %q: want https", u.Scheme)
		}
		return Local, s, nil
	}
	if u.Scheme != "https" {
		return "", "", fmt.Errorf("must use https (the client secret is sent to it); http only for a loopback host")
	}
	m := workspaceHostRE.FindStringSubmatch(host)
	if m == nil {
		return "", "", fmt.Errorf("host %q is not <workspace>.cloud.databricks.com (AWS), <workspace>.azuredatabricks.net (Azure) or <workspace>.gcp.databricks.com (GCP)", host)
	}
	return clouds[m[2]], s, nil
}

// splitTable splits catalog.schema.table.
func splitTable(s string) (catalog, schema, table string, err error) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return "", "", "", fmt.Errorf("must be catalog.schema.table, got %q", s)
	}
	for _, p := range parts {
		if !tablePartRE.MatchString(p) {
			return "", "", "", fmt.Errorf("part %q of %q is not a plain identifier (letters, digits, underscore, hyphen)", p, s)
		}
	}
	return parts[0], parts[1], parts[2], nil
}

// Validate checks what the tags cannot express.
func (c *Config) Validate() []spec.Problem {
	var ps []spec.Problem
	ep, err := parseEndpoint(c.Endpoint)
	if err != nil {
		ps = append(ps, spec.Problem{Path: "endpoint", Message: err.Error()})
	}
	cloud, _, err := parseWorkspaceURL(c.UnityCatalogURL)
	if err != nil {
		ps = append(ps, spec.Problem{Path: "unity_catalog_url", Message: err.Error()})
	} else if ep.cloud != "" && cloud != ep.cloud && cloud != Local && ep.cloud != Local {
		ps = append(ps, spec.Problem{Path: "unity_catalog_url", Message: fmt.Sprintf("is on %s but endpoint is on %s: both must be of the same workspace", cloud, ep.cloud)})
	}
	if _, _, _, err := splitTable(c.TableName); err != nil {
		ps = append(ps, spec.Problem{Path: "table_name", Message: err.Error()})
	}
	if c.MaxBackoffMs < c.InitialBackoffMs {
		ps = append(ps, spec.Problem{Path: "max_backoff_ms", Message: "must be at least initial_backoff_ms"})
	}
	if c.MaxInflightRequests < c.BatchSize {
		ps = append(ps, spec.Problem{Path: "max_inflight_requests", Message: "must be at least batch_size (one batch must fit in flight)"})
	}
	return ps
}
