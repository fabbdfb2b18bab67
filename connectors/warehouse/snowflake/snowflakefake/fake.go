// Package snowflakefake is an in-process fake of the Snowflake endpoints
// the snowflake sink uses, built from Snowflake's documentation of the
// Snowpipe Streaming REST API (high-performance architecture) and
// key-pair authentication, and, for SQL, the login and query protocol
// Snowflake's drivers speak, as the gosnowflake driver's source defines
// it (session.go). It checks requests the way the service documents it:
// the JWT's RS256 signature against the user's registered public key
// (in the Authorization header and in a driver's login request), its
// iss/sub (ACCOUNT.USER.SHA256:<fingerprint>) and its lifetime; roles
// granted to the user; session tokens; privileges on tables and schemas
// for the SQL it runs; scoped tokens; continuation tokens and client sequencers
// (re-opening a channel drops its uncommitted rows); NDJSON that is not
// RFC 8259; the 4 MB payload limit; rows that do not fit their columns
// (counted as error rows, as the service does, not inserted). Rows commit
// asynchronously: an append is acknowledged before its offset token is
// committed. Error codes are the documented ones where the documentation
// names one, else the fake's own names.
package snowflakefake

import (
	"bytes"
	"compress/gzip"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// MaxPayload is the documented limit of an append request's payload as
// sent (after compression).
const MaxPayload = 4 << 20

// Column is a table column.
type Column struct {
	Name     string // as stored (unquoted names are uppercase)
	Type     string // NUMBER(38,0), VARCHAR(16777216), BOOLEAN, TIMESTAMP_NTZ(9), VARIANT, ...
	NotNull  bool
	Default  string
	typeBase string
	p, s     int
}

// Request is one request the fake answered.
type Request struct {
	Method, Path    string
	Query           url.Values
	RequestID       string // X-Request-ID
	ContentEncoding string
	WireBytes       int // body size as sent
	Status          int
}

// Fault makes matching requests fail: Times requests whose method is
// Method (any when "") and whose path contains Path answer Status with
// Retry-After and an error code. With Apply the request is carried out
// first and only its answer is lost (an ambiguous failure).
type Fault struct {
	Method, Path string
	Status       int
	RetryAfter   string
	Code         string
	Times        int
	Apply        bool
}

type table struct {
	cols []*Column
	rows []map[string]any
}

type pending struct {
	rows     []map[string]any
	endToken string
	at       time.Time
	t        *table
}

type channel struct {
	db, schema, pipe, name string
	seq, rowSeq            int64
	committed              string
	created                time.Time
	pending                []pending
	inserted, parsed, errs int64
	lastErr, lastErrUpper  string
}

// Server is the fake account.
type Server struct {
	Account, User string // as registered; compared uppercased
	PublicKey     *rsa.PublicKey
	Roles         []string // roles granted to the user
	// DefaultRole is the user's DEFAULT_ROLE, a driver session's role
	// when the login names none (PUBLIC when empty).
	DefaultRole string
	// RoleGrants are the roles granted to a role (GRANT ROLE r TO ROLE
	// key): a session holds its primary role's privileges and theirs.
	RoleGrants map[string][]string
	// Warehouses exist and are usable by every role; a login naming
	// another gets a session without a warehouse, as the service does.
	Warehouses []string
	// CommitDelay is how long after its append a row commits; 0 commits
	// it at the next request the fake serves after the append.
	CommitDelay time.Duration
	// BareAnswers answers hostname and token as plain text, as the
	// service also does, instead of the documented JSON objects.
	BareAnswers bool

	srv *httptest.Server

	mu       sync.Mutex
	now      func() time.Time
	hold     bool
	tables   map[string]*table
	channels map[string]*channel
	scoped   map[string]time.Time
	faults   []*Fault
	log      []Request

	grants     []grant
	sessions   map[string]*session
	sessionID  int64
	statements []string
}

// New starts a fake account with a user and the user's public key.
func New(account, user string, pub *rsa.PublicKey) *Server {
	s := &Server{Account: account, User: user, PublicKey: pub, now: time.Now,
		tables: map[string]*table{}, channels: map[string]*channel{}, scoped: map[string]time.Time{}, sessions: map[string]*session{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// URL is the account URL (and, discovered from it, the ingest host).
func (s *Server) URL() string { return s.srv.URL }

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// SetNow replaces the fake's clock (expiry checks, commit times).
func (s *Server) SetNow(f func() time.Time) { s.mu.Lock(); s.now = f; s.mu.Unlock() }

// HoldCommits stops (true) or resumes (false) committing appended rows.
func (s *Server) HoldCommits(hold bool) { s.mu.Lock(); s.hold = hold; s.mu.Unlock() }

// Fail adds a fault.
func (s *Server) Fail(f Fault) { s.mu.Lock(); s.faults = append(s.faults, &f); s.mu.Unlock() }

// Requests returns the requests answered so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.log...)
}

func key(parts ...string) string { return strings.ToUpper(strings.Join(parts, ".")) }

var typeRE = regexp.MustCompile(`^([A-Z_]+)(?:\((\d+)(?:,(\d+))?\))?$`)

// CreateTable makes a table (and its default pipe TABLE-STREAMING).
func (s *Server) CreateTable(db, schema, name string, cols ...Column) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.createTable(db, schema, name, cols)
}

func (s *Server) createTable(db, schema, name string, cols []Column) {
	t := &table{}
	for _, c := range cols {
		c := c
		m := typeRE.FindStringSubmatch(strings.ToUpper(strings.ReplaceAll(c.Type, " ", "")))
		if m != nil {
			c.typeBase = m[1]
			c.p, _ = strconv.Atoi(m[2])
			c.s, _ = strconv.Atoi(m[3])
		}
		t.cols = append(t.cols, &c)
	}
	s.tables[key(db, schema, name)] = t
}

// Rows returns a table's committed rows.
func (s *Server) Rows(db, schema, name string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commitDue()
	t := s.tables[key(db, schema, name)]
	if t == nil {
		return nil
	}
	return append([]map[string]any(nil), t.rows...)
}

// Committed returns a channel's last committed offset token.
func (s *Server) Committed(db, schema, pipe, ch string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commitDue()
	if c := s.channels[key(db, schema, pipe)+"/"+ch]; c != nil {
		return c.committed
	}
	return ""
}

// ErrorRows returns a channel's error-row count and last error message.
func (s *Server) ErrorRows(db, schema, pipe, ch string) (int64, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.channels[key(db, schema, pipe)+"/"+ch]; c != nil {
		return c.errs, c.lastErr
	}
	return 0, ""
}

// commitDue commits pending appends whose time has come, in order.
func (s *Server) commitDue() {
	if s.hold {
		return
	}
	now := s.now()
	for _, c := range s.channels {
		n := 0
		for _, p := range c.pending {
			if now.Before(p.at.Add(s.CommitDelay)) && s.CommitDelay > 0 {
				break
			}
			p.t.rows = append(p.t.rows, p.rows...)
			c.inserted += int64(len(p.rows))
			if p.endToken != "" {
				c.committed = p.endToken
			}
			n++
		}
		c.pending = c.pending[n:]
	}
}

type apiErr struct {
	status     int
	code, msg  string
	retryAfter string
}

func fail(status int, code, format string, args ...any) *apiErr {
	return &apiErr{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

var (
	reStatus  = regexp.MustCompile(`^/v2/streaming/databases/([^/]+)/schemas/([^/]+)/pipes/([^/:]+):bulk-channel-status$`)
	reChannel = regexp.MustCompile(`^/v2/streaming/databases/([^/]+)/schemas/([^/]+)/pipes/([^/]+)/channels/([^/]+)$`)
	reRows    = regexp.MustCompile(`^/v2/streaming/data/databases/([^/]+)/schemas/([^/]+)/pipes/([^/]+)/channels/([^/]+)/rows$`)
)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commitDue()
	rec := Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), RequestID: r.Header.Get("X-Request-ID"),
		ContentEncoding: r.Header.Get("Content-Encoding"), WireBytes: len(body)}
	var fault *Fault
	for _, f := range s.faults {
		if f.Times > 0 && (f.Method == "" || f.Method == r.Method) && strings.Contains(r.URL.Path, f.Path) {
			f.Times--
			fault = f
			break
		}
	}
	var out any
	var e *apiErr
	if fault != nil && !fault.Apply {
		e = &apiErr{status: fault.Status, code: fault.Code, msg: "injected fault", retryAfter: fault.RetryAfter}
	} else {
		out, e = s.route(r, body)
		if fault != nil {
			e = &apiErr{status: fault.Status, code: fault.Code, msg: "injected fault after the request was carried out", retryAfter: fault.RetryAfter}
		}
	}
	if e != nil {
		rec.Status = e.status
		s.log = append(s.log, rec)
		if e.retryAfter != "" {
			w.Header().Set("Retry-After", e.retryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(e.status)
		json.NewEncoder(w).Encode(map[string]string{"code": e.code, "message": e.msg})
		return
	}
	rec.Status = http.StatusOK
	s.log = append(s.log, rec)
	if str, ok := out.(string); ok {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, str)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

func (s *Server) route(r *http.Request, body []byte) (any, *apiErr) {
	p := r.URL.Path
	switch {
	case p == "/v2/streaming/hostname" && r.Method == http.MethodGet:
		if e := s.verifyJWT(r); e != nil {
			return nil, e
		}
		if s.BareAnswers {
			return s.srv.Listener.Addr().String(), nil
		}
		return map[string]string{"hostname": s.srv.Listener.Addr().String()}, nil
	case p == "/oauth/token" && r.Method == http.MethodPost:
		return s.token(r, body)
	case p == "/session/v1/login-request" && r.Method == http.MethodPost:
		return s.login(r, body)
	case p == "/queries/v1/query-request" && r.Method == http.MethodPost:
		return s.query(r, body)
	case p == "/session" && r.Method == http.MethodPost && r.URL.Query().Get("delete") == "true":
		return s.logout(r)
	}
	if e := s.verifyScoped(r); e != nil {
		return nil, e
	}
	if m := reStatus.FindStringSubmatch(p); m != nil && r.Method == http.MethodPost {
		return s.bulkStatus(m[1], m[2], m[3], body)
	}
	if m := reChannel.FindStringSubmatch(p); m != nil {
		switch r.Method {
		case http.MethodPut:
			return s.open(m[1], m[2], m[3], m[4], body)
		case http.MethodDelete:
			if _, e := s.pipeTable(m[1], m[2], m[3]); e != nil {
				return nil, e
			}
			delete(s.channels, key(m[1], m[2], m[3])+"/"+m[4])
			return map[string]string{}, nil
		}
	}
	if m := reRows.FindStringSubmatch(p); m != nil && r.Method == http.MethodPost {
		return s.appendRows(r, m[1], m[2], m[3], m[4], body)
	}
	return nil, fail(http.StatusNotFound, "ERR_NOT_FOUND", "no such endpoint %s %s", r.Method, p)
}

// Fingerprint is SHA256:<base64 of the SHA-256 of the DER public key>.
func Fingerprint(pub *rsa.PublicKey) string {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	sum := sha256.Sum256(der)
	return "SHA256:" + base64.StdEncoding.EncodeToString(sum[:])
}

// verifyJWT checks a key-pair JWT as Snowflake does, with this package's
// own parsing (not the library the sink signs with).
func (s *Server) verifyJWT(r *http.Request) *apiErr {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return fail(http.StatusUnauthorized, "390101", "Authorization header is missing or not a Bearer token")
	}
	if tt := r.Header.Get("X-Snowflake-Authorization-Token-Type"); tt != "" && tt != "KEYPAIR_JWT" {
		return fail(http.StatusUnauthorized, "390144", "JWT token is invalid: token type %s", tt)
	}
	return s.checkJWT(tok)
}

// checkJWT verifies a key-pair JWT (from a header or a login request).
func (s *Server) checkJWT(tok string) *apiErr {
	bad := func(why string) *apiErr {
		return fail(http.StatusUnauthorized, "390144", "JWT token is invalid: %s", why)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return bad("not a JWS compact serialization")
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	cb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || json.Unmarshal(hb, &hdr) != nil {
		return bad("undecodable")
	}
	if hdr.Alg != "RS256" {
		return bad("alg " + hdr.Alg + ", expected RS256")
	}
	h := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(s.PublicKey, crypto.SHA256, h[:], sig) != nil {
		return bad("signature does not verify with the user's registered public key")
	}
	var c struct {
		Iss string   `json:"iss"`
		Sub string   `json:"sub"`
		Iat *float64 `json:"iat"`
		Exp *float64 `json:"exp"`
	}
	if json.Unmarshal(cb, &c) != nil || c.Iat == nil || c.Exp == nil {
		return bad("claims iss, sub, iat and exp are required")
	}
	user := strings.ToUpper(s.Account) + "." + strings.ToUpper(s.User)
	if c.Sub != user {
		return bad(fmt.Sprintf("sub %q is not %q", c.Sub, user))
	}
	iss, fp, _ := strings.Cut(c.Iss, ".SHA256:")
	if iss != user {
		return bad(fmt.Sprintf("iss names %q, not %q", iss, user))
	}
	if "SHA256:"+fp != Fingerprint(s.PublicKey) {
		return bad("the public key fingerprint in iss does not match the user's RSA_PUBLIC_KEY_FP")
	}
	now := float64(s.now().Unix())
	switch {
	case *c.Exp <= now:
		return bad("expired")
	case *c.Iat > now+60:
		return bad("issued in the future")
	case *c.Exp-*c.Iat > 3600:
		return bad("lifetime over one hour")
	}
	return nil
}

func (s *Server) verifyScoped(r *http.Request) *apiErr {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return fail(http.StatusUnauthorized, "390101", "Authorization header is missing")
	}
	until, known := s.scoped[tok]
	switch {
	case !known:
		return fail(http.StatusUnauthorized, "390303", "invalid scoped token")
	case !s.now().Before(until):
		return fail(http.StatusUnauthorized, "390114", "scoped token expired")
	}
	return nil
}

func (s *Server) token(r *http.Request, body []byte) (any, *apiErr) {
	if e := s.verifyJWT(r); e != nil {
		return nil, e
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		return nil, fail(http.StatusBadRequest, "invalid_request", "content type must be application/x-www-form-urlencoded")
	}
	form, err := url.ParseQuery(string(body))
	if err != nil || form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		return nil, fail(http.StatusBadRequest, "unsupported_grant_type", "grant_type must be urn:ietf:params:oauth:grant-type:jwt-bearer")
	}
	host := s.srv.Listener.Addr().String()
	hasHost := false
	for _, sc := range strings.Fields(form.Get("scope")) {
		if role, ok := strings.CutPrefix(sc, "session:role:"); ok {
			granted := false
			for _, g := range s.Roles {
				granted = granted || strings.EqualFold(g, role)
			}
			if !granted {
				return nil, fail(http.StatusForbidden, "390186", "role %s is not granted to this user", role)
			}
		} else if sc == host {
			hasHost = true
		}
	}
	if !hasHost {
		return nil, fail(http.StatusBadRequest, "invalid_scope", "scope must name the account's ingest hostname")
	}
	b := make([]byte, 24)
	rand.Read(b)
	t := "ver:1-hint:" + hex.EncodeToString(b)
	s.scoped[t] = s.now().Add(time.Hour)
	if s.BareAnswers {
		return t, nil
	}
	return map[string]string{"token": t}, nil
}

// pipeTable resolves a pipe: TABLE-STREAMING is a table's default pipe.
func (s *Server) pipeTable(db, schema, pipe string) (*table, *apiErr) {
	name, ok := strings.CutSuffix(strings.ToUpper(pipe), "-STREAMING")
	if t := s.tables[key(db, schema, name)]; ok && t != nil {
		return t, nil
	}
	return nil, fail(http.StatusNotFound, "ERR_PIPE_DOES_NOT_EXIST_OR_NOT_AUTHORIZED", "pipe %s.%s.%s does not exist or not authorized", db, schema, pipe)
}

func contToken(seq, row int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("%d:%d", seq, row)))
}

func (c *channel) status() map[string]any {
	return map[string]any{
		"database_name": c.db, "schema_name": c.schema, "pipe_name": c.pipe, "channel_name": c.name,
		"channel_status_code": "ACTIVE", "last_committed_offset_token": c.committed, "created_on_ms": c.created.UnixMilli(),
		"rows_inserted": c.inserted, "rows_parsed": c.parsed, "rows_error_count": c.errs, "rows_errors": c.errs,
		"last_error_offset_upper_bound": c.lastErrUpper, "last_error_message": c.lastErr,
	}
}

func (s *Server) open(db, schema, pipe, name string, body []byte) (any, *apiErr) {
	if _, e := s.pipeTable(db, schema, pipe); e != nil {
		return nil, e
	}
	var req struct {
		OffsetToken           *string `json:"offset_token"`
		FailOnUncommittedRows bool    `json:"fail_on_uncommitted_rows"`
	}
	if len(bytes.TrimSpace(body)) > 0 && json.Unmarshal(body, &req) != nil {
		return nil, fail(http.StatusBadRequest, "ERR_INVALID_REQUEST", "open channel: body is not a JSON object")
	}
	k := key(db, schema, pipe) + "/" + name
	c := s.channels[k]
	if c == nil {
		c = &channel{db: db, schema: schema, pipe: pipe, name: name, created: s.now()}
		s.channels[k] = c
	}
	if len(c.pending) > 0 && req.FailOnUncommittedRows {
		return nil, fail(http.StatusConflict, "ERR_CHANNEL_HAS_UNCOMMITTED_DATA", "channel has uncommitted data")
	}
	// Re-opening bumps the client sequencer and drops in-flight rows.
	c.seq++
	c.rowSeq = 0
	c.pending = nil
	if req.OffsetToken != nil {
		c.committed = *req.OffsetToken
	}
	return map[string]any{"next_continuation_token": contToken(c.seq, c.rowSeq), "channel_status": c.status()}, nil
}

func (s *Server) bulkStatus(db, schema, pipe string, body []byte) (any, *apiErr) {
	if _, e := s.pipeTable(db, schema, pipe); e != nil {
		return nil, e
	}
	var req struct {
		ChannelNames []string `json:"channel_names"`
	}
	if json.Unmarshal(body, &req) != nil || req.ChannelNames == nil {
		return nil, fail(http.StatusBadRequest, "ERR_INVALID_REQUEST", "channel_names is required")
	}
	out := map[string]any{}
	for _, n := range req.ChannelNames {
		if c := s.channels[key(db, schema, pipe)+"/"+n]; c != nil {
			out[n] = c.status()
		}
	}
	return map[string]any{"channel_statuses": out}, nil
}

// payload checks the headers and size and undoes the compression.
func payload(r *http.Request, body []byte) ([]byte, *apiErr) {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-ndjson") {
		return nil, fail(http.StatusUnsupportedMediaType, "ERR_UNSUPPORTED_CONTENT_TYPE", "append rows takes application/x-ndjson, not %q", ct)
	}
	if len(body) > MaxPayload {
		return nil, fail(http.StatusRequestEntityTooLarge, "ERR_PAYLOAD_TOO_LARGE", "payload of %d bytes is over the 4 MB limit", len(body))
	}
	switch enc := r.Header.Get("Content-Encoding"); enc {
	case "", "identity":
		return body, nil
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, fail(http.StatusBadRequest, "ERR_INVALID_COMPRESSION", "gzip: %v", err)
		}
		out, err := io.ReadAll(zr)
		if err != nil {
			return nil, fail(http.StatusBadRequest, "ERR_INVALID_COMPRESSION", "gzip: %v", err)
		}
		return out, nil
	default:
		return nil, fail(http.StatusBadRequest, "ERR_UNSUPPORTED_COMPRESSION", "Content-Encoding %s is not supported (gzip, zstd)", enc)
	}
}

// parseNDJSON reads one JSON object per line, each followed by \n (a \r
// before it allowed), strictly as RFC 8259 text.
func parseNDJSON(b []byte) ([]map[string]any, *apiErr) {
	if len(b) == 0 {
		return nil, fail(http.StatusBadRequest, "ERR_INVALID_NDJSON", "empty payload")
	}
	if b[len(b)-1] != '\n' {
		return nil, fail(http.StatusBadRequest, "ERR_INVALID_NDJSON", "each JSON text must be followed by a newline")
	}
	var rows []map[string]any
	for i, line := range bytes.Split(b[:len(b)-1], []byte("\n")) {
		line = bytes.TrimSuffix(line, []byte("\r"))
		if !json.Valid(line) {
			return nil, fail(http.StatusBadRequest, "ERR_INVALID_NDJSON", "line %d is not valid JSON (RFC 8259)", i+1)
		}
		d := json.NewDecoder(bytes.NewReader(line))
		d.UseNumber()
		var row map[string]any
		if err := d.Decode(&row); err != nil || row == nil {
			return nil, fail(http.StatusBadRequest, "ERR_INVALID_NDJSON", "line %d is not a JSON object", i+1)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func (s *Server) appendRows(r *http.Request, db, schema, pipe, name string, body []byte) (any, *apiErr) {
	t, e := s.pipeTable(db, schema, pipe)
	if e != nil {
		return nil, e
	}
	q := r.URL.Query()
	data, e := payload(r, body)
	if e != nil {
		return nil, e
	}
	if name == "ELASTIC" {
		for _, k := range []string{"offsetToken", "startOffsetToken", "endOffsetToken", "continuationToken"} {
			if q.Has(k) {
				return nil, fail(http.StatusBadRequest, "ERR_INVALID_REQUEST", "Elastic requests must not include %s", k)
			}
		}
		rows, e := parseNDJSON(data)
		if e != nil {
			return nil, e
		}
		for _, row := range rows {
			if err := fitRow(t, row); err == "" {
				t.rows = append(t.rows, row)
			}
		}
		return map[string]string{"message": "OK"}, nil
	}
	c := s.channels[key(db, schema, pipe)+"/"+name]
	if c == nil {
		return nil, fail(http.StatusNotFound, "ERR_CHANNEL_DOES_NOT_EXIST_OR_IS_NOT_AUTHORIZED", "channel %s is not open", name)
	}
	raw, err := base64.RawURLEncoding.DecodeString(q.Get("continuationToken"))
	var seq, row int64
	if err != nil || q.Get("continuationToken") == "" {
		return nil, fail(http.StatusBadRequest, "ERR_INVALID_CONTINUATION_TOKEN", "continuationToken is required")
	}
	if _, err := fmt.Sscanf(string(raw), "%d:%d", &seq, &row); err != nil {
		return nil, fail(http.StatusBadRequest, "ERR_INVALID_CONTINUATION_TOKEN", "continuationToken is not one this service issued")
	}
	if seq != c.seq {
		return nil, fail(http.StatusBadRequest, "STALE_CONTINUATION_TOKEN_SEQUENCER", "Channel sequencer in the continuation token is stale. Please reopen the channel")
	}
	if row != c.rowSeq {
		return nil, fail(http.StatusBadRequest, "STALE_CONTINUATION_TOKEN_ROW_SEQUENCER", "Row sequencer in the continuation token is stale. Please reopen the channel")
	}
	rows, e := parseNDJSON(data)
	if e != nil {
		return nil, e
	}
	end := q.Get("endOffsetToken")
	if end == "" {
		end = q.Get("offsetToken")
	}
	p := pending{endToken: end, at: s.now(), t: t}
	for _, rw := range rows {
		c.parsed++
		if why := fitRow(t, rw); why != "" {
			c.errs++
			c.lastErr, c.lastErrUpper = why, end
			continue
		}
		p.rows = append(p.rows, rw)
	}
	c.pending = append(c.pending, p)
	c.rowSeq++
	return map[string]string{"next_continuation_token": contToken(c.seq, c.rowSeq)}, nil
}

// fitRow is the service's row check: "" when the row fits the table.
func fitRow(t *table, row map[string]any) string {
	for _, c := range t.cols {
		v, ok := row[c.Name]
		if (!ok && c.Default == "" || ok && v == nil) && c.NotNull {
			return fmt.Sprintf("NULL result in a non-nullable column %s", c.Name)
		}
		if !ok || v == nil {
			continue
		}
		if why := fitValue(c, v); why != "" {
			return fmt.Sprintf("column %s: %s", c.Name, why)
		}
	}
	return ""
}

func fitValue(c *Column, v any) string {
	switch c.typeBase {
	case "NUMBER":
		var s string
		switch x := v.(type) {
		case json.Number:
			s = string(x)
		case string:
			s = x
		default:
			return "Numeric value expected"
		}
		f, ok := new(big.Float).SetString(s)
		if !ok {
			return fmt.Sprintf("Numeric value '%s' is not recognized", s)
		}
		limit := new(big.Float).SetFloat64(1)
		for i := 0; i < c.p-c.s; i++ {
			limit.Mul(limit, big.NewFloat(10))
		}
		if f.Abs(f).Cmp(limit) >= 0 {
			return fmt.Sprintf("Number out of representable range: type FIXEDSB16 {nullable=true, precision=%d, scale=%d}", c.p, c.s)
		}
	case "VARCHAR":
		switch x := v.(type) {
		case string:
			if c.p > 0 && utf8.RuneCountInString(x) > c.p {
				return fmt.Sprintf("String '%.20s…' is too long and would be truncated", x)
			}
		case map[string]any, []any:
			return "a string is expected"
		}
	case "BOOLEAN":
		switch x := v.(type) {
		case bool, json.Number:
		case string:
			switch strings.ToLower(x) {
			case "true", "false", "t", "f", "yes", "no", "y", "n", "on", "off", "1", "0":
			default:
				return fmt.Sprintf("Boolean value '%s' is not recognized", x)
			}
		default:
			return "Boolean value expected"
		}
	case "OBJECT":
		if _, ok := v.(map[string]any); !ok {
			return "an OBJECT is expected"
		}
	case "ARRAY":
		if _, ok := v.([]any); !ok {
			return "an ARRAY is expected"
		}
	}
	return ""
}

// splitDefs splits column definitions at commas outside parentheses.
func splitDefs(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, r := range s {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}
