package snowflake

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/rivven/rivven-connect/shared/resilience"
)

// The Snowpipe Streaming REST API (high-performance architecture), as
// Snowflake documents it (SQL goes through the driver, sql.go):
//
//	GET  {account}/v2/streaming/hostname                     (JWT)  → {"hostname"}
//	POST {account}/oauth/token  grant_type=…jwt-bearer&scope=HOST  (JWT)  → scoped token
//	PUT  {ingest}/v2/streaming/databases/D/schemas/S/pipes/P/channels/C        open channel
//	POST {ingest}/v2/streaming/data/databases/D/schemas/S/pipes/P/channels/C/rows
//	       ?continuationToken=…&startOffsetToken=…&endOffsetToken=…   NDJSON rows
//	POST {ingest}/v2/streaming/databases/D/schemas/S/pipes/P:bulk-channel-status
//
// Errors come as {"code": "...", "message": "..."}.

const userAgent = "rivven-connect-snowflake/1.0"

// maxRequestBytes is the service's limit on an append request's payload
// as sent (after compression); batches are cut well below it.
const maxRequestBytes = 4 << 20

// apiError is the service's error body with the HTTP status.
type apiError struct {
	Status  int
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *apiError) Error() string {
	msg := e.Message
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	if e.Code != "" {
		return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Code, msg)
	}
	return fmt.Sprintf("HTTP %d: %s", e.Status, msg)
}

// staleChannel reports an error after which the channel must be opened
// again: another client opened it (its sequencer moved on), or the
// continuation token no longer matches the channel's row sequencer.
func staleChannel(err error) bool {
	var ae *apiError
	if !errors.As(err, &ae) {
		return false
	}
	return strings.HasPrefix(ae.Code, "STALE_CONTINUATION_TOKEN") || ae.Code == "ERR_CHANNEL_MUST_BE_REOPENED"
}

// client talks to one account.
type client struct {
	cfg     *Config
	http    *http.Client
	base    string
	jwt     *jwtSource
	timeout time.Duration
	now     func() time.Time
	observe func(ok bool, d time.Duration) // each response: 2xx or not, latency

	mu          sync.Mutex
	ingest      string // scheme://host of the ingest host
	scoped      string
	scopedUntil time.Time
}

// request is one HTTP call.
type request struct {
	method, url string
	query       url.Values
	body        []byte
	contentType string
	gzip        bool // send the body gzip-compressed
	jwt         bool // authorize with the key-pair JWT (account host), else the scoped token
}

// do sends r once and decodes a JSON answer into out (when not nil). The
// error is classified for resilience.Do; a 401 on the ingest host clears
// the scoped token so the next attempt exchanges a fresh one.
func (c *client) do(ctx context.Context, r request, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	u := r.url
	id := uuid.NewString()
	q := url.Values{}
	for k, v := range r.query {
		q[k] = v
	}
	if strings.Contains(u, "/v2/streaming/") && q.Get("requestId") == "" {
		q.Set("requestId", id)
	}
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	body := r.body
	if r.gzip {
		var buf bytes.Buffer
		buf.Grow(len(body) / 4)
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
		zw.Write(body)
		zw.Close()
		body = buf.Bytes()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, rd)
	if err != nil {
		return resilience.New(resilience.Fatal, err)
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Request-ID", id)
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	if r.gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	if r.jwt {
		tok, _, err := c.jwt.Token()
		if err != nil {
			return resilience.New(resilience.Auth, err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("X-Snowflake-Authorization-Token-Type", "KEYPAIR_JWT")
	} else {
		tok, err := c.scopedToken(ctx)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if c.observe != nil {
		c.observe(err == nil && resp.StatusCode/100 == 2, time.Since(start))
	}
	if err != nil {
		// The transport's error names the URL, which holds no secret.
		if ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
			return resilience.New(resilience.Timeout, fmt.Errorf("%s %s: no answer within request_timeout_secs (%v)", r.method, redactURL(u), c.timeout))
		}
		return resilience.New(resilience.Connection, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return resilience.New(resilience.Connection, err)
	}
	if resp.StatusCode/100 != 2 {
		ae := &apiError{Status: resp.StatusCode}
		if json.Unmarshal(data, ae) != nil || ae.Message == "" && ae.Code == "" {
			ae.Message = strings.TrimSpace(string(data))
		}
		if resp.StatusCode == http.StatusUnauthorized {
			if r.jwt {
				c.jwt.reset()
			} else {
				c.mu.Lock()
				c.scoped = ""
				c.mu.Unlock()
			}
		}
		return classify(resp.StatusCode, resp.Header.Get("Retry-After"), c.now(), ae)
	}
	if out == nil {
		return nil
	}
	if s, ok := out.(*string); ok {
		*s = string(data)
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return resilience.New(resilience.Fatal, fmt.Errorf("%s %s: undecodable answer: %w", r.method, redactURL(r.url), err))
	}
	return nil
}

// classify maps a status to the reference's retry behaviour: 408, 429 and
// 5xx are retried (honouring Retry-After on each of them); 400, 401, 403
// and 404 are not. A stale continuation token is retried after the
// channel is opened again.
func classify(status int, retryAfter string, now time.Time, ae *apiError) error {
	if staleChannel(ae) {
		return resilience.New(resilience.Connection, ae)
	}
	switch {
	case status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500:
		c := resilience.Connection
		switch status {
		case http.StatusRequestTimeout:
			c = resilience.Timeout
		case http.StatusTooManyRequests:
			c = resilience.RateLimited
		}
		d, _ := resilience.ParseRetryAfter(retryAfter, now)
		return &resilience.Error{Class: c, Err: ae, RetryAfter: d}
	case status == http.StatusConflict:
		// Uncommitted rows or a concurrent open: open again and re-read.
		return resilience.New(resilience.Connection, ae)
	}
	return resilience.FromHTTP(status, "", now, ae)
}

// redactURL drops the query (continuation tokens are session state).
func redactURL(u string) string {
	s, _, _ := strings.Cut(u, "?")
	return s
}

// ingestHost discovers the account's ingest host once.
func (c *client) ingestHost(ctx context.Context) (string, error) {
	c.mu.Lock()
	h := c.ingest
	c.mu.Unlock()
	if h != "" {
		return h, nil
	}
	var raw string
	if err := c.do(ctx, request{method: http.MethodGet, url: c.base + "/v2/streaming/hostname", jwt: true}, &raw); err != nil {
		return "", fmt.Errorf("hostname discovery: %w", err)
	}
	// Documented as {"hostname": "..."}; some accounts answer the bare name.
	var v struct {
		Hostname string `json:"hostname"`
	}
	host := strings.TrimSpace(raw)
	if json.Unmarshal([]byte(raw), &v) == nil && v.Hostname != "" {
		host = v.Hostname
	}
	host = strings.Trim(host, `"`)
	if host == "" || strings.ContainsAny(host, "/ ") {
		return "", resilience.Errorf(resilience.Fatal, "hostname discovery: unexpected answer %.80q", raw)
	}
	// Underscores are not valid in TLS host names: the documented
	// workaround is hyphens.
	host = strings.ReplaceAll(host, "_", "-")
	scheme := "https"
	if u, err := url.Parse(c.base); err == nil && u.Scheme == "http" {
		scheme = "http" // a local test endpoint
	}
	c.mu.Lock()
	c.ingest = scheme + "://" + host
	c.mu.Unlock()
	return scheme + "://" + host, nil
}

// scopedToken exchanges the JWT for a token scoped to the ingest host (and
// the role), cached until the JWT it came from is renewed.
func (c *client) scopedToken(ctx context.Context) (string, error) {
	c.mu.Lock()
	tok, until := c.scoped, c.scopedUntil
	c.mu.Unlock()
	if tok != "" && until.Sub(c.now()) > jwtRenewBefore {
		return tok, nil
	}
	host, err := c.ingestHost(ctx)
	if err != nil {
		return "", err
	}
	_, jwtExp, err := c.jwt.Token()
	if err != nil {
		return "", resilience.New(resilience.Auth, err)
	}
	scope := strings.TrimPrefix(strings.TrimPrefix(host, "https://"), "http://")
	if c.cfg.Role != "" {
		scope = "session:role:" + c.cfg.Role + " " + scope
	}
	form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "scope": {scope}}
	var raw string
	if err := c.do(ctx, request{method: http.MethodPost, url: c.base + "/oauth/token", body: []byte(form.Encode()),
		contentType: "application/x-www-form-urlencoded", jwt: true}, &raw); err != nil {
		return "", fmt.Errorf("scoped token exchange: %w", err)
	}
	// Documented as {"token": "..."}; the service also answers the bare token.
	var v struct {
		Token string `json:"token"`
	}
	tok = strings.TrimSpace(raw)
	if json.Unmarshal([]byte(raw), &v) == nil && v.Token != "" {
		tok = v.Token
	}
	if tok == "" {
		return "", resilience.Errorf(resilience.Auth, "scoped token exchange: empty token")
	}
	c.mu.Lock()
	c.scoped, c.scopedUntil = tok, jwtExp
	c.mu.Unlock()
	return tok, nil
}

// channelStatus is a channel's state as open and bulk status report it.
type channelStatus struct {
	ChannelStatusCode        string `json:"channel_status_code"`
	LastCommittedOffsetToken string `json:"last_committed_offset_token"`
	RowsInserted             int64  `json:"rows_inserted"`
	RowsParsed               int64  `json:"rows_parsed"`
	RowsErrorCount           int64  `json:"rows_error_count"`
	RowsErrors               int64  `json:"rows_errors"`
	LastErrorOffsetUpper     string `json:"last_error_offset_upper_bound"`
	LastErrorMessage         string `json:"last_error_message"`
}

func (s channelStatus) errors() int64 { return max(s.RowsErrorCount, s.RowsErrors) }

func (c *client) pipePath(ingest string) string {
	return ingest + "/v2/streaming/databases/" + url.PathEscape(c.cfg.Database) + "/schemas/" + url.PathEscape(c.cfg.Schema) +
		"/pipes/" + url.PathEscape(c.cfg.pipe())
}

// openChannel opens (or re-opens) a channel: the service bumps its client
// sequencer, drops rows appended but not committed, and answers the next
// continuation token and the last committed offset token.
func (c *client) openChannel(ctx context.Context, name string) (cont string, st channelStatus, err error) {
	ingest, err := c.ingestHost(ctx)
	if err != nil {
		return "", st, err
	}
	var out struct {
		NextContinuationToken string        `json:"next_continuation_token"`
		ChannelStatus         channelStatus `json:"channel_status"`
	}
	err = c.do(ctx, request{method: http.MethodPut, url: c.pipePath(ingest) + "/channels/" + url.PathEscape(name),
		body: []byte("{}"), contentType: "application/json"}, &out)
	if err != nil {
		return "", st, fmt.Errorf("open channel %s: %w", name, err)
	}
	if out.NextContinuationToken == "" {
		return "", st, resilience.Errorf(resilience.Fatal, "open channel %s: no continuation token in the answer", name)
	}
	return out.NextContinuationToken, out.ChannelStatus, nil
}

// appendRows sends NDJSON rows; it answers the next continuation token.
func (c *client) appendRows(ctx context.Context, channel, cont, startTok, endTok string, ndjson []byte) (string, error) {
	ingest, err := c.ingestHost(ctx)
	if err != nil {
		return "", err
	}
	q := url.Values{"continuationToken": {cont}}
	if startTok != "" {
		q.Set("startOffsetToken", startTok)
		q.Set("endOffsetToken", endTok)
	}
	gz := c.cfg.CompressionEnabled && len(ndjson) > c.cfg.CompressionThresholdBytes
	var out struct {
		NextContinuationToken string `json:"next_continuation_token"`
	}
	u := strings.Replace(c.pipePath(ingest), "/v2/streaming/", "/v2/streaming/data/", 1) + "/channels/" + url.PathEscape(channel) + "/rows"
	err = c.do(ctx, request{method: http.MethodPost, url: u, query: q, body: ndjson, contentType: "application/x-ndjson", gzip: gz}, &out)
	if err != nil {
		return "", fmt.Errorf("append rows to channel %s: %w", channel, err)
	}
	return out.NextContinuationToken, nil
}

// status reads the channels' statuses; a channel the service does not
// know is absent from the answer.
func (c *client) status(ctx context.Context, channels []string) (map[string]channelStatus, error) {
	ingest, err := c.ingestHost(ctx)
	if err != nil {
		return nil, err
	}
	body, _ := json.Marshal(map[string][]string{"channel_names": channels})
	var out struct {
		ChannelStatuses map[string]channelStatus `json:"channel_statuses"`
	}
	if err := c.do(ctx, request{method: http.MethodPost, url: c.pipePath(ingest) + ":bulk-channel-status", body: body, contentType: "application/json"}, &out); err != nil {
		return nil, fmt.Errorf("channel status: %w", err)
	}
	return out.ChannelStatuses, nil
}

// appendElastic sends rows to the pipe's Elastic channel; requestID stays
// the same over the retries of one rowset, retry counts them.
func (c *client) appendElastic(ctx context.Context, requestID string, retry int, ndjson []byte) error {
	ingest, err := c.ingestHost(ctx)
	if err != nil {
		return err
	}
	q := url.Values{"requestId": {requestID}, "retryCount": {strconv.Itoa(retry)}}
	gz := c.cfg.CompressionEnabled && len(ndjson) > c.cfg.CompressionThresholdBytes
	u := strings.Replace(c.pipePath(ingest), "/v2/streaming/", "/v2/streaming/data/", 1) + "/channels/ELASTIC/rows"
	if err := c.do(ctx, request{method: http.MethodPost, url: u, query: q, body: ndjson, contentType: "application/x-ndjson", gzip: gz}, nil); err != nil {
		return fmt.Errorf("append rows to the Elastic channel: %w", err)
	}
	return nil
}
