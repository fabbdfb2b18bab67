package httpwebhook

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/resilience"
)

func init() {
	catalog.RegisterSink[Config](catalog.Meta{
		Name:             "http-webhook",
		ConcurrentWrites: true,
		Aliases:          []string{"webhook"},
		Category:         catalog.Utility,
		Subcategory:      "HTTP",
		Description:      "Sends events to an HTTP endpoint, one per request or as JSON arrays, signed per Standard Webhooks, with retries, Retry-After, mutual TLS, HTTP/2 and gzip.",
		Tags:             []string{"http", "webhook", "https", "standard-webhooks", "rest"},
		Metrics: []string{"http_webhook.events_sent_total", "http_webhook.events_failed_total", "http_webhook.requests_total",
			"http_webhook.retries_total", "http_webhook.rate_limited_total", "http_webhook.bytes_sent_total"},
	}, New)
}

// bodySnippet is how much of an error response is kept for the
// dead-letter reason: enough for a JSON error object, not a whole page.
const bodySnippet = 512

// Sink sends events to one URL.
type Sink struct {
	cfg         Config
	url         string
	shownURL    string // url without query and credentials, for errors and logs
	codec       events.Codec
	keys        [][]byte
	header      http.Header
	host        string // a Host header from the config, sent as the request's Host
	contentType string
	policy      resilience.Policy
	tr          *http.Transport
	client      *http.Client

	// Replaced by tests: the clock retries wait on and the jitter.
	clock resilience.Clock
	rand  func() float64

	sent, failedN, requests, retries, limited, bytes atomic.Uint64

	// refused remembers requests the receiver refused for good (a 4xx
	// other than 408/429, a redirect), by webhook-id: the engine
	// redelivers failed events until its attempts are used up, and
	// sending the same request again would only be refused again.
	refused refusals
}

// refusals is a bounded memory of refused webhook-ids and why.
type refusals struct {
	mu    sync.Mutex
	why   map[string]error
	order []string
}

// maxRefusals bounds the memory: ids of the last refusals only.
const maxRefusals = 4096

func (r *refusals) get(id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.why[id]
}

func (r *refusals) put(id string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.why == nil {
		r.why = map[string]error{}
	}
	if _, ok := r.why[id]; ok {
		return
	}
	if len(r.order) == maxRefusals {
		delete(r.why, r.order[0])
		r.order = r.order[1:]
	}
	r.why[id] = err
	r.order = append(r.order, id)
}

// New builds an http-webhook sink; the config is already validated.
func New(ctx context.Context, cfg *Config) (connector.Sink, error) {
	codec, err := events.NewCodec(cfg.Codec, cfg.Debezium, cfg.CloudEvents)
	if err != nil {
		return nil, connector.Fatal(err)
	}
	s := &Sink{cfg: *cfg, url: cfg.URL, shownURL: showURL(cfg.URL), codec: codec, clock: resilience.RealClock{}, rand: rand.Float64}
	if cfg.SigningSecret != "" {
		if s.keys, err = signingKeys(cfg.SigningSecret); err != nil {
			return nil, connector.Fatal(fmt.Errorf("http-webhook: signing_secret: %w", err))
		}
	}
	s.header = http.Header{}
	for k, v := range cfg.Headers {
		if strings.EqualFold(k, "Host") {
			s.host = v
			continue
		}
		s.header.Set(k, v)
	}
	s.contentType = codec.ContentType()
	if cfg.BatchSize > 1 && cfg.Codec == events.CodecCloudEvents {
		// CloudEvents' HTTP binding names a JSON array of events so.
		s.contentType = "application/cloudevents-batch+json"
	}
	if s.header.Get("Content-Type") == "" {
		s.header.Set("Content-Type", s.contentType)
	}
	if s.header.Get("User-Agent") == "" {
		s.header.Set("User-Agent", "rivven-connect http-webhook")
	}
	r := cfg.Retry
	s.policy = resilience.Policy{
		MaxRetries: r.MaxAttempts - 1,
		Initial:    time.Duration(r.InitialBackoffMS) * time.Millisecond,
		Max:        time.Duration(r.MaxBackoffMS) * time.Millisecond,
		Multiplier: r.BackoffMultiplier,
		Jitter:     r.JitterFactor,
	}
	if s.tr, err = transport(cfg); err != nil {
		return nil, connector.Fatal(fmt.Errorf("http-webhook: %w", err))
	}
	s.client = &http.Client{
		Transport: s.tr,
		// A redirect would resend a signed body, with its credentials in
		// headers, to a place the pipeline does not name.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return s, nil
}

// transport is the HTTP client's transport: the TLS of the tls block,
// the protocols of http_version and the per-host connection limit.
func transport(cfg *Config) (*http.Transport, error) {
	tc, err := cfg.TLS.config()
	if err != nil {
		return nil, err
	}
	timeout := time.Duration(cfg.TimeoutSecs) * time.Second
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tc,
		TLSHandshakeTimeout:   min(timeout, 10*time.Second),
		ResponseHeaderTimeout: timeout,
		MaxConnsPerHost:       cfg.MaxConnsPerHost,
		MaxIdleConnsPerHost:   cfg.MaxConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     cfg.HTTPVersion != "http1",
	}
	var p http.Protocols
	switch cfg.HTTPVersion {
	case "http1":
		p.SetHTTP1(true)
	case "http2":
		p.SetHTTP2(true)
		p.SetUnencryptedHTTP2(true)
	default:
		p.SetHTTP1(true)
		p.SetHTTP2(true)
	}
	tr.Protocols = &p
	return tr, nil
}

// config builds the client TLS config.
func (t TLS) config() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in, documented as testing only
	ca := []byte(t.CAPEM)
	if t.CAPath != "" {
		b, err := os.ReadFile(t.CAPath)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_path: %w", err)
		}
		ca = b
	}
	if len(ca) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return nil, errors.New("tls: no PEM certificate found in the CA (ca_path / ca_pem)")
		}
		tc.RootCAs = pool
	}
	switch {
	case t.CertPath != "":
		cert, err := tls.LoadX509KeyPair(t.CertPath, t.KeyPath)
		if err != nil {
			return nil, fmt.Errorf("tls.cert_path / key_path: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	case t.CertPEM != "":
		cert, err := tls.X509KeyPair([]byte(t.CertPEM), []byte(t.KeyPEM))
		if err != nil {
			// The error never holds the key's bytes.
			return nil, fmt.Errorf("tls.cert_pem / key_pem: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Metrics returns the sink's counters.
func (s *Sink) Metrics() map[string]float64 {
	return map[string]float64{
		"http_webhook.events_sent_total":   float64(s.sent.Load()),
		"http_webhook.events_failed_total": float64(s.failedN.Load()),
		"http_webhook.requests_total":      float64(s.requests.Load()),
		"http_webhook.retries_total":       float64(s.retries.Load()),
		"http_webhook.rate_limited_total":  float64(s.limited.Load()),
		"http_webhook.bytes_sent_total":    float64(s.bytes.Load()),
	}
}

// Check connects to the endpoint (TLS and client certificate included) and
// sends a HEAD request with the configured headers. Any HTTP answer
// passes: webhook receivers seldom implement HEAD, and reaching one that
// answers at all is what can be checked without sending an event.
func (s *Sink) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(s.cfg.TimeoutSecs)*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, s.url, nil)
	if err != nil {
		return connector.Fatal(fmt.Errorf("http-webhook: %s: %w", s.shownURL, err))
	}
	req.Header = s.header.Clone()
	if s.host != "" {
		req.Host = s.host
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return s.transportError(ctx, err)
	}
	_ = resp.Body.Close()
	return nil
}

// Close closes idle connections.
func (s *Sink) Close(context.Context) error {
	s.tr.CloseIdleConnections()
	return nil
}

// request is one HTTP request of a Write: the events (by batch index) and
// the body they make.
type request struct {
	idx  []int
	body []byte
	id   string
}

// Write sends the batch in requests of batch_size events. Events that
// cannot be encoded, and those of requests that failed, are reported in a
// *connector.WriteError (they are redelivered and, after the engine's
// attempts, dead-lettered with the reason: the HTTP status and the start
// of the response body). When no event got through and the failure may
// pass (the server is down, rate-limiting), the error is returned for the
// whole batch, so that the engine's breaker and Retry-After handling see
// it.
func (s *Sink) Write(ctx context.Context, batch []*events.Event) error {
	rt := connector.RuntimeFrom(ctx)
	failed := map[int]error{}
	reqs := s.requestsOf(batch, failed)
	errs := make([]error, len(reqs))
	if s.cfg.MaxInFlight <= 1 || len(reqs) == 1 {
		for k, r := range reqs {
			errs[k] = s.send(ctx, rt, r)
			if errs[k] != nil && resilience.Retryable(errs[k]) {
				// Later requests are not sent: redelivered after this one,
				// they keep their order at the receiver.
				for j := k + 1; j < len(reqs); j++ {
					errs[j] = fmt.Errorf("http-webhook: not sent after an earlier request of the batch failed: %w", errs[k])
				}
				break
			}
		}
	} else {
		next := atomic.Int64{}
		var wg sync.WaitGroup
		for range min(s.cfg.MaxInFlight, len(reqs)) {
			wg.Go(func() {
				for k := int(next.Add(1) - 1); k < len(reqs); k = int(next.Add(1) - 1) {
					errs[k] = s.send(ctx, rt, reqs[k])
				}
			})
		}
		wg.Wait()
	}
	var sent, bytesSent uint64
	var firstErr error
	allRetryable := true
	for k, r := range reqs {
		if errs[k] == nil {
			sent += uint64(len(r.idx))
			bytesSent += uint64(len(r.body))
			continue
		}
		if firstErr == nil {
			firstErr = errs[k]
		}
		allRetryable = allRetryable && resilience.Retryable(errs[k])
		for _, i := range r.idx {
			failed[i] = errs[k]
		}
	}
	s.sent.Add(sent)
	s.bytes.Add(bytesSent)
	s.failedN.Add(uint64(len(failed)))
	switch {
	case len(failed) == 0:
		return nil
	case sent == 0 && firstErr != nil && allRetryable && len(failed) == len(batch):
		return firstErr
	}
	return &connector.WriteError{Failed: failed}
}

// requestsOf encodes the batch into request bodies; what the codec leaves
// out (Debezium's skipped operations) is done, what cannot be encoded
// fails.
func (s *Sink) requestsOf(batch []*events.Event, failed map[int]error) []request {
	var reqs []request
	var cur request
	var ids []string
	seen := map[events.Position]int{}
	flush := func() {
		if len(cur.idx) == 0 {
			return
		}
		if s.cfg.BatchSize > 1 {
			cur.body = append(cur.body, ']')
			cur.id = batchID(ids)
		} else {
			cur.id = ids[0]
		}
		reqs = append(reqs, cur)
		cur, ids = request{}, nil
	}
	for i, ev := range batch {
		mark, start := len(cur.body), len(cur.body)
		if s.cfg.BatchSize > 1 {
			if len(cur.idx) == 0 {
				cur.body = append(cur.body, '[')
			} else {
				cur.body = append(cur.body, ',')
			}
			start = len(cur.body)
		}
		body, err := s.codec.Append(cur.body, ev)
		if err != nil {
			// The separator written for it goes too.
			cur.body = cur.body[:mark]
			if !errors.Is(err, events.ErrSkipped) {
				failed[i] = resilience.New(resilience.Schema, fmt.Errorf("http-webhook: encode as %s: %w", s.codec.Name(), err))
			}
			continue
		}
		cur.body = body
		cur.idx = append(cur.idx, i)
		ids = append(ids, eventID(ev, body[start:], seen))
		if len(cur.idx) == s.cfg.BatchSize {
			flush()
		}
	}
	flush()
	return reqs
}

// eventID is an event's webhook-id: derived from where the trigger
// delivered it (topic and partition+offset, or the message id), which a
// redelivery repeats, so that a receiver deduplicating on webhook-id sees
// a redelivery as the same message. seen counts events from one delivered
// record (a transform may make several), which keep their order. Events
// no trigger delivered (a source running in the same process) are named
// after their encoded content.
func eventID(ev *events.Event, body []byte, seen map[events.Position]int) string {
	h := sha256.New()
	d := ev.Delivered
	switch {
	case d != nil && d.Topic != "" && (d.HasOffset || d.ID != ""):
		k := *d
		n := seen[k]
		seen[k] = n + 1
		var b [8]byte
		if d.HasOffset {
			h.Write([]byte("offset\x00"))
			writeField(h, d.Topic)
			binary.BigEndian.PutUint32(b[:4], uint32(d.Partition))
			h.Write(b[:4])
			binary.BigEndian.PutUint64(b[:], uint64(d.Offset))
			h.Write(b[:])
		} else {
			h.Write([]byte("id\x00"))
			writeField(h, d.Topic)
			writeField(h, d.ID)
		}
		binary.BigEndian.PutUint64(b[:], uint64(n))
		h.Write(b[:])
	default:
		h.Write([]byte("content\x00"))
		h.Write(body)
	}
	return "msg_" + hex.EncodeToString(h.Sum(nil)[:16])
}

// batchID is the webhook-id of a request of several events: the same
// events in the same order give the same id.
func batchID(ids []string) string {
	h := sha256.New()
	h.Write([]byte("batch\x00"))
	for _, id := range ids {
		writeField(h, id)
	}
	return "msg_" + hex.EncodeToString(h.Sum(nil)[:16])
}

// writeField writes a length-prefixed string, so that no two sequences of
// fields hash the same bytes.
func writeField(w io.Writer, s string) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(s)))
	_, _ = w.Write(n[:])
	_, _ = io.WriteString(w, s)
}

// send delivers one request, retrying what may pass.
func (s *Sink) send(ctx context.Context, rt *connector.Runtime, r request) error {
	if err := s.refused.get(r.id); err != nil {
		return fmt.Errorf("not sent again: the receiver refused webhook-id %s before: %w", r.id, err)
	}
	err := s.sendOnce(ctx, rt, r)
	// Only what is wrong with the request itself (400, 413, 415, 422,
	// other 4xx, a redirect): a 401 or 404 may be fixed on the receiver's
	// side before the engine's next delivery.
	if c := resilience.ClassOf(err); err != nil && (c == resilience.Schema || c == resilience.Fatal) && !errors.Is(err, context.Canceled) {
		s.refused.put(r.id, err)
	}
	return err
}

// sendOnce delivers one request, retrying what may pass.
func (s *Sink) sendOnce(ctx context.Context, rt *connector.Runtime, r request) error {
	body, gz := r.body, false
	if s.cfg.Compression == "gzip" && len(body) >= s.cfg.CompressionMinBytes {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(body)
		if err := zw.Close(); err != nil {
			return fmt.Errorf("http-webhook: gzip: %w", err)
		}
		body, gz = buf.Bytes(), true
	}
	maxWait := time.Duration(s.cfg.Retry.MaxRetryAfterSecs) * time.Second
	return resilience.Do(ctx, s.policy, func(ctx context.Context) error {
		return s.attempt(ctx, r, body, gz)
	},
		resilience.WithClock(s.clock),
		resilience.WithRand(s.rand),
		resilience.RetryIf(func(err error) bool { return resilience.RetryAfterOf(err) <= maxWait }),
		resilience.OnRetry(func(attempt int, err error, wait time.Duration) {
			s.retries.Add(1)
			rt.Logger().Warn("webhook request failed; retrying", "url", s.shownURL, "webhook_id", r.id,
				"events", len(r.idx), "attempt", attempt, "wait", wait.String(), "error", err)
		}))
}

// attempt sends the request once. Each attempt is signed anew: the
// timestamp is the attempt's, as receivers reject old ones.
func (s *Sink) attempt(ctx context.Context, r request, body []byte, gz bool) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(s.cfg.TimeoutSecs)*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, s.cfg.Method, s.url, bytes.NewReader(body))
	if err != nil {
		return connector.Fatal(fmt.Errorf("http-webhook: %s: %w", s.shownURL, err))
	}
	req.Header = s.header.Clone()
	if s.host != "" {
		req.Host = s.host
	}
	if gz {
		req.Header.Set("Content-Encoding", "gzip")
	}
	// Signed or not, webhook-id is the idempotency key receivers
	// deduplicate on.
	req.Header.Set("webhook-id", r.id)
	if len(s.keys) > 0 {
		ts := s.clock.Now().Unix()
		req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
		req.Header.Set("webhook-signature", sign(s.keys, r.id, ts, r.body))
	}
	s.requests.Add(1)
	resp, err := s.client.Do(req)
	if err != nil {
		return s.transportError(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 300 {
		// The status is the receiver's answer; its body is not needed,
		// and a body cut short does not undo a 2xx.
		_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
		return nil
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, bodySnippet))
	msg := fmt.Sprintf("http-webhook: %s %s: HTTP %d %s", s.cfg.Method, s.shownURL, resp.StatusCode, http.StatusText(resp.StatusCode))
	if len(bytes.TrimSpace(snippet)) > 0 {
		msg += ": " + strings.ToValidUTF8(string(bytes.TrimSpace(snippet)), "?")
	}
	if resp.StatusCode < 400 {
		return resilience.New(resilience.Fatal, fmt.Errorf("%s (redirects are not followed; Location: %s)", msg, showURL(resp.Header.Get("Location"))))
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		s.limited.Add(1)
	}
	return resilience.FromHTTP(resp.StatusCode, resp.Header.Get("Retry-After"), s.clock.Now(), errors.New(msg))
}

// transportError classifies an error of the HTTP client: a certificate
// the tls block does not trust cannot pass by retrying; the rest
// (refused, reset, closed mid-request, timed out) may. The URL in it is
// replaced by the shown one (no query string, which may hold a token).
func (s *Sink) transportError(ctx context.Context, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	werr := fmt.Errorf("http-webhook: %s %s: %w", s.cfg.Method, s.shownURL, err)
	var (
		unknownCA *x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
	)
	switch {
	case errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &invalid), errors.As(err, &verify):
		return resilience.New(resilience.Auth, werr)
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		return resilience.New(resilience.Timeout, fmt.Errorf("%w (timeout_secs %d)", werr, s.cfg.TimeoutSecs))
	}
	return werr
}

// sign is the webhook-signature header: v1,<base64 HMAC-SHA256 of
// "id.timestamp.body"> for each key, separated by spaces (Standard
// Webhooks; several during a key rotation).
func sign(keys [][]byte, id string, ts int64, body []byte) string {
	var b strings.Builder
	for i, k := range keys {
		m := hmac.New(sha256.New, k)
		m.Write([]byte(id))
		m.Write([]byte{'.'})
		m.Write(strconv.AppendInt(nil, ts, 10))
		m.Write([]byte{'.'})
		m.Write(body)
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("v1,")
		b.WriteString(base64.StdEncoding.EncodeToString(m.Sum(nil)))
	}
	return b.String()
}

// showURL is a URL fit for errors and logs: no credentials, no query
// (which may carry a token).
func showURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User = nil
	if u.RawQuery != "" {
		u.RawQuery = "…"
	}
	u.Fragment = ""
	return u.String()
}

// ConcurrentWrites: a Write's requests, bodies and results are its own;
// the HTTP client, the counters and the memory of refused requests are
// safe for concurrent use, so concurrent requests post in parallel.
func (*Sink) ConcurrentWrites() bool { return true }
