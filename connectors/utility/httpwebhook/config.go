// Package httpwebhook is the http-webhook sink: it sends events to an HTTP
// endpoint, one per request or as a JSON array, signed the way Standard
// Webhooks (standardwebhooks.com) defines, with retries, Retry-After,
// TLS with a private CA and client certificates, HTTP/2 and gzip.
package httpwebhook

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/spec"
)

// Config is the http-webhook sink's config block: the reference's keys
// (url, method, headers, batch_size, timeout_secs, retry.max_attempts and
// the backoffs of its example) and what receivers expect beyond them.
type Config struct {
	URL         string            `yaml:"url" required:"true" doc:"Webhook URL (http:// or https://). Redirects are not followed: a 3xx is reported with its Location, since following one would resend a signed body to a host the configuration does not name."`
	Method      string            `yaml:"method" default:"POST" enum:"POST,PUT,PATCH" doc:"HTTP method."`
	Headers     map[string]string `yaml:"headers" secret:"true" doc:"Request headers, e.g. Authorization: \"Bearer ${TOKEN}\". Content-Type defaults to the codec's (application/json). The values are treated as secrets (redacted from logs and output) since they usually carry credentials. webhook-*, Content-Encoding and Content-Length are set by the sink."`
	BatchSize   int               `yaml:"batch_size" default:"1" min:"1" max:"10000" doc:"Events per request: 1 sends each event as the request body, more sends a JSON array of up to that many events."`
	TimeoutSecs int               `yaml:"timeout_secs" default:"30" min:"1" max:"3600" doc:"Timeout of one request, from connecting until the response headers are read."`
	Retry       Retry             `yaml:"retry" doc:"Retries of a request that failed in a way that may pass (connection errors, timeouts, 408, 429, 5xx). Other 4xx are not retried: their events go to the dead-letter topic with the status and the start of the response body."`
	MaxInFlight int               `yaml:"max_in_flight" default:"1" min:"1" max:"256" doc:"Requests of one batch sent at once. 1 keeps the order of events across requests; more sends faster without order."`

	Codec       string                    `yaml:"codec" default:"rivven" enum:"rivven,debezium,cloudevents" doc:"Body encoding of each event: Rivven event JSON, Debezium change envelope or CloudEvents (structured JSON; batches are application/cloudevents-batch+json)."`
	Debezium    events.DebeziumOptions    `yaml:"debezium" doc:"Settings of codec debezium, named after the Debezium connector properties (dots as underscores), with Debezium's defaults."`
	CloudEvents events.CloudEventsOptions `yaml:"cloudevents" doc:"Settings of codec cloudevents."`

	SigningSecret string `yaml:"signing_secret" secret:"true" doc:"Standard Webhooks signing secret, whsec_ followed by the base64 of the key (usually ${VAR}). When set, every request carries webhook-id (stable across redeliveries of the same events), webhook-timestamp and webhook-signature (v1, HMAC-SHA256 of id.timestamp.body). Several secrets separated by spaces sign with each (key rotation)."`

	TLS                 TLS    `yaml:"tls" doc:"TLS of https URLs: private CA, client certificate (mutual TLS)."`
	HTTPVersion         string `yaml:"http_version" default:"auto" enum:"auto,http1,http2" doc:"auto: HTTP/2 when the https server offers it (ALPN), else HTTP/1.1; http1: HTTP/1.1 only; http2: HTTP/2 only (over https by ALPN, over http:// as h2c with prior knowledge)."`
	Compression         string `yaml:"compression" default:"none" enum:"none,gzip" doc:"Request body compression; gzip sends Content-Encoding: gzip. Signatures are over the uncompressed body, which is what a receiver sees after decoding."`
	CompressionMinBytes int    `yaml:"compression_min_bytes" default:"1024" min:"0" doc:"Bodies smaller than this are sent uncompressed (gzip costs more than it saves on small bodies)."`
	MaxConnsPerHost     int    `yaml:"max_connections_per_host" default:"8" min:"1" max:"1024" doc:"Connections open to the webhook's host at most (dialing, active and idle); requests beyond it wait for a free connection."`
}

// Retry is the retry block. max_attempts counts every attempt, the first
// included, as the reference's example does (max_attempts: 3 is one try
// and two retries).
type Retry struct {
	MaxAttempts       int     `yaml:"max_attempts" default:"3" min:"1" max:"100" doc:"Attempts of one request, the first included."`
	InitialBackoffMS  int     `yaml:"initial_backoff_ms" default:"1000" min:"1" doc:"Wait before the first retry."`
	MaxBackoffMS      int     `yaml:"max_backoff_ms" default:"30000" min:"1" doc:"Longest wait between attempts (jitter included)."`
	BackoffMultiplier float64 `yaml:"backoff_multiplier" default:"2" min:"1" max:"10" doc:"Factor the wait grows by after each retry."`
	JitterFactor      float64 `yaml:"jitter_factor" default:"0.2" min:"0" max:"1" doc:"Each wait is spread by ±this fraction, so that senders that failed together do not retry together."`
	MaxRetryAfterSecs int     `yaml:"max_retry_after_secs" default:"300" min:"0" doc:"Longest Retry-After (of a 429 or 503) waited for inside one write; a longer one fails the events back to the engine, which redelivers them later."`
}

// TLS is the tls block. PEM may be given as files (paths) or inline
// (usually ${VAR}, which suits functions that bundle no files).
type TLS struct {
	CAPath             string `yaml:"ca_path" doc:"PEM file of CA certificates to trust instead of the system roots (a private CA)."`
	CAPEM              string `yaml:"ca_pem" doc:"The same CA certificates inline as PEM."`
	CertPath           string `yaml:"cert_path" doc:"PEM client certificate (with key_path) for mutual TLS."`
	KeyPath            string `yaml:"key_path" doc:"PEM private key of cert_path."`
	CertPEM            string `yaml:"cert_pem" doc:"Client certificate inline as PEM (with key_pem)."`
	KeyPEM             string `yaml:"key_pem" secret:"true" doc:"Private key of cert_pem inline as PEM."`
	ServerName         string `yaml:"server_name" doc:"Name checked against the server's certificate (and sent as SNI) instead of the URL's host."`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify" default:"false" doc:"Do not verify the server's certificate (testing only)."`
}

const secretPrefix = "whsec_"

// Validate checks what the tags cannot express.
func (c *Config) Validate() []spec.Problem {
	var ps []spec.Problem
	add := func(path, format string, args ...any) {
		ps = append(ps, spec.Problem{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add("url", "must be an absolute http:// or https:// URL")
	} else if u.User != nil {
		// Credentials in the URL would be echoed by every error net/http
		// returns; they belong in a header.
		add("url", "must not carry credentials (user:password@); put them in headers.Authorization")
	}
	for k := range c.Headers {
		switch lk := strings.ToLower(k); {
		case strings.HasPrefix(lk, "webhook-"):
			add("headers."+k, "webhook-* headers are set by the sink (signing_secret)")
		case lk == "content-length" || lk == "content-encoding" || lk == "transfer-encoding":
			add("headers."+k, "set by the sink")
		case !validHeaderName(k):
			add("headers."+k, "is not a valid header name")
		}
	}
	if c.SigningSecret != "" {
		if _, err := signingKeys(c.SigningSecret); err != nil {
			add("signing_secret", "%s", err.Error())
		}
	}
	if c.Retry.MaxBackoffMS > 0 && c.Retry.InitialBackoffMS > c.Retry.MaxBackoffMS {
		add("retry.initial_backoff_ms", "must not exceed retry.max_backoff_ms (%d)", c.Retry.MaxBackoffMS)
	}
	for _, oe := range events.CodecErrors(c.Codec, c.Debezium, c.CloudEvents, false) {
		add(oe.Path, "%s", oe.Message)
	}
	t := c.TLS
	if t.CAPath != "" && t.CAPEM != "" {
		add("tls.ca_pem", "give the CA as ca_path or ca_pem, not both")
	}
	if (t.CertPath == "") != (t.KeyPath == "") {
		add("tls.cert_path", "cert_path and key_path go together")
	}
	if (t.CertPEM == "") != (t.KeyPEM == "") {
		add("tls.cert_pem", "cert_pem and key_pem go together")
	}
	if t.CertPath != "" && t.CertPEM != "" {
		add("tls.cert_pem", "give the client certificate as files or inline, not both")
	}
	if u, err := url.Parse(c.URL); err == nil && u.Scheme == "http" && (t != TLS{}) {
		add("tls", "only used with an https:// url")
	}
	return ps
}

// signingKeys decodes a signing_secret: one or more whsec_<base64>
// separated by spaces. Errors never echo the secret.
func signingKeys(s string) ([][]byte, error) {
	var keys [][]byte
	for i, f := range strings.Fields(s) {
		if !strings.HasPrefix(f, secretPrefix) {
			return nil, fmt.Errorf("secret %d does not start with %s (a Standard Webhooks secret is whsec_ followed by the base64 of the key)", i+1, secretPrefix)
		}
		k, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(f, secretPrefix))
		if err != nil {
			return nil, fmt.Errorf("secret %d: the part after whsec_ is not standard base64", i+1)
		}
		// The convention asks for keys of 24 to 64 bytes; a shorter key
		// is guessable, so it is refused rather than used.
		if len(k) < 24 || len(k) > 64 {
			return nil, fmt.Errorf("secret %d: the key is %d bytes; Standard Webhooks keys are 24 to 64 bytes", i+1, len(k))
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("empty")
	}
	return keys, nil
}

// validHeaderName reports whether k is an RFC 9110 token.
func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		if r > 0x7e || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return http.CanonicalHeaderKey(k) != ""
}
