// Package mqtt is a source that subscribes to MQTT 3.1.1 or MQTT 5 topic
// filters (wildcards + and #) and emits every message as a record event.
// QoS 1 and 2 messages are acknowledged to the broker only after the batch
// holding them was durably published, so with a persistent session
// (clean_session: false and a fixed client_id) nothing acknowledged is lost
// and nothing unacknowledged is forgotten: the broker redelivers it on
// reconnect.
//
// mqtt.go holds the configuration and the one read loop (batching,
// acknowledging, reconnect backoff) that both protocol versions share;
// v311.go (Eclipse Paho, github.com/eclipse/paho.mqtt.golang) and v5.go
// (github.com/eclipse/paho.golang) each implement the small conn interface
// over their client.
package mqtt

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	paho5 "github.com/eclipse/paho.golang/paho"
	"golang.org/x/net/proxy"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
)

func init() {
	catalog.RegisterSource[Config](catalog.Meta{
		Name:        "mqtt",
		Aliases:     []string{"mqtt-source"},
		Category:    catalog.Messaging,
		Subcategory: "MQTT",
		Description: "Subscribes to MQTT 3.1.1 or 5 topic filters (wildcards + and #) and emits each message as a record; QoS 1/2 messages are acknowledged only after they are durably published.",
		Tags:        []string{"mqtt", "iot", "mosquitto", "pubsub", "broker", "sensors"},
	}, New)
}

// Config is the mqtt source's config block.
type Config struct {
	BrokerURL          string    `yaml:"broker_url" required:"true" doc:"MQTT broker URL: mqtt:// (or tcp://) for plain TCP, mqtts:// (or ssl://) for TLS. The port defaults to 1883 and 8883."`
	ProtocolVersion    string    `yaml:"protocol_version" default:"3.1.1" enum:"3.1.1,5" doc:"MQTT protocol version spoken to the broker: 3.1.1 or 5 (MQTT 5.0)."`
	Topics             []string  `yaml:"topics" required:"true" doc:"MQTT topic filters to subscribe to; + matches one level, # (last) any number of levels."`
	ClientID           string    `yaml:"client_id" doc:"Client identifier; generated (rivven-<random>) when empty. Required with clean_session: false, so that the session can be resumed."`
	QoS                string    `yaml:"qos" default:"at_most_once" enum:"at_most_once,at_least_once,exactly_once" doc:"Quality of Service of the subscriptions."`
	CleanSession       bool      `yaml:"clean_session" default:"true" doc:"Start with a clean session. false keeps the subscriptions and unacknowledged QoS 1/2 messages at the broker across reconnects (MQTT 5: Clean Start 0 and a Session Expiry Interval of session_expiry_secs; true is Clean Start 1 with expiry 0)."`
	SessionExpirySecs  *uint32   `yaml:"session_expiry_secs" min:"1" max:"4294967295" doc:"MQTT 5 with clean_session: false only: seconds the broker keeps the session (subscriptions, unacknowledged messages) after a disconnect; 4294967295 never expires. 3600 when not set."`
	Auth               *Auth     `yaml:"auth" doc:"Username and password authentication."`
	TLS                *TLS      `yaml:"tls" doc:"TLS settings for mqtts:// and ssl:// URLs."`
	KeepAliveSecs      int       `yaml:"keep_alive_secs" default:"60" min:"1" max:"65535" doc:"Keep-alive interval in seconds."`
	ConnectTimeoutSecs int       `yaml:"connect_timeout_secs" default:"30" min:"1" doc:"Connection timeout in seconds (connect, subscribe)."`
	MaxInflight        int       `yaml:"max_inflight" default:"100" min:"1" max:"65535" doc:"Max received messages not yet published and acknowledged; when reached the source stops reading from the broker (back-pressure). MQTT 5: also sent as Receive Maximum."`
	RetryInitialMS     int       `yaml:"retry_initial_ms" default:"100" min:"1" doc:"Initial reconnect backoff delay in milliseconds."`
	RetryMaxMS         int       `yaml:"retry_max_ms" default:"10000" min:"1" doc:"Maximum reconnect backoff delay in milliseconds."`
	RetryMultiplier    float64   `yaml:"retry_multiplier" default:"2.0" min:"1" doc:"Backoff multiplier applied after each failed connection attempt."`
	ParseJSONPayload   bool      `yaml:"parse_json_payload" default:"true" doc:"Use a payload that is valid JSON as the event data; otherwise (or when false) the data is the payload as a JSON string (base64 when not UTF-8)."`
	IncludeMetadata    bool      `yaml:"include_metadata" default:"true" doc:"Add mqtt_topic, qos, retained and message_id to the event metadata; with MQTT 5 also user_properties, content_type, response_topic, correlation_data and message_expiry_secs when the message carries them."`
	LastWill           *LastWill `yaml:"last_will" doc:"Last Will and Testament, published by the broker when the connection drops without a clean disconnect."`
}

// Auth is the username/password pair.
type Auth struct {
	Username string `yaml:"username" doc:"Username."`
	Password string `yaml:"password" secret:"true" doc:"Password."`
}

// TLS configures mqtts:// connections.
type TLS struct {
	CAPath             string `yaml:"ca_path" doc:"PEM file of CA certificates to trust instead of the system roots."`
	CertPath           string `yaml:"cert_path" doc:"PEM client certificate (with key_path) for mutual TLS."`
	KeyPath            string `yaml:"key_path" doc:"PEM private key of cert_path."`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify" default:"false" doc:"Do not verify the broker's certificate (testing only)."`
}

// LastWill is the Last Will and Testament.
type LastWill struct {
	Topic   string `yaml:"topic" required:"true" doc:"LWT topic for disconnect notification."`
	Message string `yaml:"message" doc:"LWT message payload."`
	QoS     string `yaml:"qos" default:"at_most_once" enum:"at_most_once,at_least_once,exactly_once" doc:"LWT QoS level."`
	Retain  bool   `yaml:"retain" default:"false" doc:"LWT retain flag."`
}

var qosLevels = map[string]byte{"at_most_once": 0, "at_least_once": 1, "exactly_once": 2}

// Values of protocol_version.
const (
	v311 = "3.1.1"
	v5   = "5"
)

// defaultSessionExpiry is the MQTT 5 Session Expiry Interval of a
// persistent session (clean_session: false) when session_expiry_secs is
// not set: long enough to ride out restarts and deploys, short enough that
// a source that is gone for good does not pin messages at the broker.
const defaultSessionExpiry = 3600

// Validate checks what the tags cannot express; New runs it too, for
// configs built in code.
func (c *Config) Validate() []spec.Problem {
	var ps []spec.Problem
	if _, err := brokerURI(c.BrokerURL); err != nil {
		ps = append(ps, spec.Problem{Path: "broker_url", Message: err.Error()})
	} else if c.TLS != nil && !isTLS(c.BrokerURL) {
		ps = append(ps, spec.Problem{Path: "tls", Message: "tls is only used with an mqtts:// or ssl:// broker_url"})
	}
	if len(c.Topics) == 0 {
		ps = append(ps, spec.Problem{Path: "topics", Message: "at least one topic filter is required"})
	}
	for i, t := range c.Topics {
		if err := validFilter(t); err != nil {
			ps = append(ps, spec.Problem{Path: spec.Index("topics", i), Message: err.Error()})
		}
	}
	// "" is 3.1.1 too, for configs built in code without the defaults.
	if c.ProtocolVersion != "" && c.ProtocolVersion != v311 && c.ProtocolVersion != v5 {
		ps = append(ps, spec.Problem{Path: "protocol_version", Message: fmt.Sprintf("unknown protocol_version %q (allowed: \"3.1.1\", \"5\")", c.ProtocolVersion)})
	}
	if c.SessionExpirySecs != nil {
		switch {
		case c.ProtocolVersion != v5:
			ps = append(ps, spec.Problem{Path: "session_expiry_secs", Message: `only used with protocol_version: "5" (MQTT 3.1.1 has no session expiry: a persistent session lasts until the broker drops it)`})
		case c.CleanSession:
			ps = append(ps, spec.Problem{Path: "session_expiry_secs", Message: "only used with clean_session: false (a clean session ends with the connection)"})
		case *c.SessionExpirySecs == 0:
			ps = append(ps, spec.Problem{Path: "session_expiry_secs", Message: "must be at least 1 (0 ends the session with the connection; use clean_session: true)"})
		}
	}
	if _, ok := qosLevels[c.QoS]; !ok {
		ps = append(ps, spec.Problem{Path: "qos", Message: fmt.Sprintf("unknown qos %q (allowed: at_most_once, at_least_once, exactly_once)", c.QoS)})
	}
	if !c.CleanSession && c.ClientID == "" {
		ps = append(ps, spec.Problem{Path: "client_id", Message: "required with clean_session: false (a generated id changes on every start, so the persistent session would never be resumed)"})
	}
	if len(c.ClientID) > 65535 {
		ps = append(ps, spec.Problem{Path: "client_id", Message: "too long"})
	}
	if c.KeepAliveSecs < 1 || c.KeepAliveSecs > 65535 {
		ps = append(ps, spec.Problem{Path: "keep_alive_secs", Message: "must be between 1 and 65535"})
	}
	if c.ConnectTimeoutSecs < 1 {
		ps = append(ps, spec.Problem{Path: "connect_timeout_secs", Message: "must be at least 1"})
	}
	if c.MaxInflight < 1 {
		ps = append(ps, spec.Problem{Path: "max_inflight", Message: "must be at least 1"})
	}
	if c.RetryInitialMS < 1 {
		ps = append(ps, spec.Problem{Path: "retry_initial_ms", Message: "must be at least 1"})
	}
	if c.RetryMaxMS < c.RetryInitialMS {
		ps = append(ps, spec.Problem{Path: "retry_max_ms", Message: "must be at least retry_initial_ms"})
	}
	if c.RetryMultiplier < 1 {
		ps = append(ps, spec.Problem{Path: "retry_multiplier", Message: "must be at least 1"})
	}
	if c.TLS != nil && (c.TLS.CertPath == "") != (c.TLS.KeyPath == "") {
		ps = append(ps, spec.Problem{Path: "tls", Message: "cert_path and key_path go together"})
	}
	if w := c.LastWill; w != nil {
		if w.Topic == "" || strings.ContainsAny(w.Topic, "+#\x00") {
			ps = append(ps, spec.Problem{Path: "last_will.topic", Message: "must be a topic name without wildcards"})
		}
		if _, ok := qosLevels[w.QoS]; !ok {
			ps = append(ps, spec.Problem{Path: "last_will.qos", Message: fmt.Sprintf("unknown qos %q (allowed: at_most_once, at_least_once, exactly_once)", w.QoS)})
		}
	}
	return ps
}

func isTLS(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "mqtts" || u.Scheme == "ssl")
}

// brokerURI maps broker_url to the URI paho dials, adding the default port.
func brokerURI(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err == nil && u.User != nil {
		return "", errors.New("credentials do not go into the URL: use auth.username and auth.password")
	}
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("%q is not a URL like mqtt://host:1883", raw)
	}
	var scheme, port string
	switch u.Scheme {
	case "mqtt", "tcp":
		scheme, port = "tcp", "1883"
	case "mqtts", "ssl":
		scheme, port = "ssl", "8883"
	default:
		return "", fmt.Errorf("unsupported scheme %q in %q (allowed: mqtt://, mqtts://, tcp://, ssl://)", u.Scheme, raw)
	}
	if u.Path != "" && u.Path != "/" {
		return "", fmt.Errorf("%q: a broker URL has no path", raw)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), port)
	}
	return scheme + "://" + host, nil
}

// validFilter checks MQTT 3.1.1 topic filter syntax (section 4.7).
func validFilter(f string) error {
	if f == "" {
		return errors.New("empty topic filter")
	}
	if len(f) > 65535 || !utf8.ValidString(f) || strings.ContainsRune(f, 0) {
		return fmt.Errorf("topic filter %q is not a valid UTF-8 string of at most 65535 bytes without NUL", f)
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i != len(levels)-1:
			return fmt.Errorf("topic filter %q: '#' must be the last level", f)
		case l != "#" && strings.Contains(l, "#"):
			return fmt.Errorf("topic filter %q: '#' must be a whole level (like a/#)", f)
		case l != "+" && strings.Contains(l, "+"):
			return fmt.Errorf("topic filter %q: '+' must be a whole level (like a/+/b)", f)
		}
	}
	return nil
}

// Source subscribes to MQTT; see Config. One Source may be read again after
// a restart (it keeps no state between Reads but its client id).
type Source struct {
	cfg      Config
	broker   string // paho v3 URI: tcp://host:port or ssl://host:port
	addr     string // host:port
	clientID string
	qos      byte
	tlsCfg   *tls.Config

	// Test hooks: dial replaces the TCP dialer (TLS still runs on top),
	// subscribed is called once the subscriptions are in place.
	dial       func(ctx context.Context, addr string) (net.Conn, error)
	subscribed func()
}

// New builds an mqtt source.
func New(ctx context.Context, cfg *Config) (connector.Source, error) {
	s := &Source{cfg: *cfg, qos: qosLevels[cfg.QoS], clientID: cfg.ClientID}
	s.broker, _ = brokerURI(cfg.BrokerURL)
	_, s.addr, _ = strings.Cut(s.broker, "://")
	if s.clientID == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		s.clientID = "rivven-" + hex.EncodeToString(b[:])
	}
	if isTLS(cfg.BrokerURL) {
		t, err := tlsConfig(cfg.TLS)
		if err != nil {
			return nil, connector.Fatal(err)
		}
		s.tlsCfg = t
	}
	return s, nil
}

func tlsConfig(c *TLS) (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if c == nil {
		return t, nil
	}
	t.InsecureSkipVerify = c.InsecureSkipVerify
	if c.CAPath != "" {
		pem, err := os.ReadFile(c.CAPath)
		if err != nil {
			return nil, fmt.Errorf("mqtt: tls.ca_path: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mqtt: tls.ca_path: no PEM certificates in %s", c.CAPath)
		}
		t.RootCAs = pool
	}
	if c.CertPath != "" {
		cert, err := tls.LoadX509KeyPair(c.CertPath, c.KeyPath)
		if err != nil {
			return nil, fmt.Errorf("mqtt: tls.cert_path/key_path: %w", err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}

// openConn dials the broker (through the dial hook or a proxy from the
// environment, as Paho v3 does) and runs the TLS handshake for mqtts://.
func (s *Source) openConn(ctx context.Context) (net.Conn, error) {
	dial := s.dial
	if dial == nil {
		dial = func(ctx context.Context, addr string) (net.Conn, error) { return proxy.Dial(ctx, "tcp", addr) }
	}
	c, err := dial(ctx, s.addr)
	if err != nil || s.tlsCfg == nil {
		return c, err
	}
	t := s.tlsCfg.Clone()
	if t.ServerName == "" {
		t.ServerName, _, _ = net.SplitHostPort(s.addr)
	}
	tc := tls.Client(c, t)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = c.Close()
		return nil, err
	}
	return tc, nil
}

func (s *Source) connectTimeout() time.Duration {
	return time.Duration(s.cfg.ConnectTimeoutSecs) * time.Second
}

// message is one received PUBLISH, whatever the protocol version.
type message struct {
	topic    string
	payload  []byte
	qos      byte
	retained bool
	id       uint16
	props    *paho5.PublishProperties // MQTT 5 only
	at       time.Time
	// ack sends PUBACK (QoS 1) or PUBREC (QoS 2); a no-op for QoS 0 and
	// when the connection that delivered the message is gone.
	ack func()
}

// conn is one MQTT connection as the shared read loop sees it; v311.go and
// v5.go implement it over their clients. Acknowledgements go through each
// message's ack.
type conn interface {
	// subscribe subscribes to the filters at qos and fails when the broker
	// refuses any of them.
	subscribe(ctx context.Context, filters []string, qos byte) error
	// disconnect sends DISCONNECT (so the broker publishes no will) once
	// the acknowledgements requested so far are on the wire, giving up on
	// them after a short quiesce time, and closes the connection.
	disconnect()
}

// session is one connection: the messages it delivers and a channel
// closed when the connection is lost.
type session struct {
	conn conn
	msgs chan message
	stop chan struct{}   // closed to release a handler blocked on msgs
	lost <-chan struct{} // closed when the connection is lost
}

func newSession(buffer int) *session {
	return &session{msgs: make(chan message, buffer), stop: make(chan struct{})}
}

// deliver hands a message from the client's receive goroutine to the read
// loop; it blocks while max_inflight messages wait, which stops the client
// reading from the broker (back-pressure).
func (sess *session) deliver(m message) {
	m.at = time.Now().UTC()
	select {
	case sess.msgs <- m:
	case <-sess.stop:
	}
}

func (sess *session) close() {
	close(sess.stop)
	sess.conn.disconnect()
}

// open connects sess with the configured protocol version; probe connects
// as the health check (its own client id, a clean session, no will).
func (s *Source) open(ctx context.Context, sess *session, probe bool) error {
	var err error
	if s.cfg.ProtocolVersion == v5 {
		err = s.open5(ctx, sess, probe)
	} else {
		err = s.open311(ctx, sess, probe)
	}
	if err != nil {
		close(sess.stop) // release a handler that got a message before the failure
	}
	return err
}

// checkClientID is the health check's client id: it must not take over
// the session of a running source.
func (s *Source) checkClientID() string { return s.clientID + "-check" }

// Check connects to the broker and disconnects.
func (s *Source) Check(ctx context.Context) error {
	sess := newSession(1)
	if err := s.open(ctx, sess, true); err != nil {
		return fmt.Errorf("mqtt: connect to %s: %w", s.cfg.BrokerURL, err)
	}
	sess.close()
	return nil
}

// connect opens a session and subscribes.
func (s *Source) connect(ctx context.Context) (*session, error) {
	sess := newSession(s.cfg.MaxInflight)
	if err := s.open(ctx, sess, false); err != nil {
		return nil, fmt.Errorf("mqtt: connect to %s: %w", s.cfg.BrokerURL, err)
	}
	// A filter listed twice is subscribed once (a second SUBSCRIBE of the
	// same filter only replaces the first).
	var filters []string
	seen := make(map[string]bool, len(s.cfg.Topics))
	for _, t := range s.cfg.Topics {
		if !seen[t] {
			seen[t] = true
			filters = append(filters, t)
		}
	}
	subCtx, cancel := context.WithTimeout(ctx, s.connectTimeout())
	err := sess.conn.subscribe(subCtx, filters, s.qos)
	cancel()
	if err != nil {
		sess.close()
		return nil, fmt.Errorf("mqtt: subscribe: %w", err)
	}
	if s.subscribed != nil {
		s.subscribed()
	}
	return sess, nil
}

// Batching: a batch is emitted when it holds maxBatch messages or
// maxWait after its first message arrived.
const (
	maxBatch = 100
	maxWait  = 50 * time.Millisecond
)

// quiesce bounds how long a clean disconnect waits for outgoing
// acknowledgements.
const quiesce = 250 * time.Millisecond

// errLost ends a session whose connection dropped.
var errLost = errors.New("connection lost")

// Read subscribes and emits batches until ctx is done (then it returns
// nil) or Emit fails (then it returns the error, leaving the batch's
// messages unacknowledged). MQTT has no replayable offsets: resume is
// ignored and events carry no position; durability comes from QoS 1/2 with
// a persistent session (clean_session: false).
func (s *Source) Read(ctx context.Context, _ []byte, emit connector.Emitter) error {
	delay := time.Duration(s.cfg.RetryInitialMS) * time.Millisecond
	maxDelay := time.Duration(s.cfg.RetryMaxMS) * time.Millisecond
	for {
		if ctx.Err() != nil {
			return nil
		}
		sess, err := s.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			delay = min(time.Duration(float64(delay)*s.cfg.RetryMultiplier), maxDelay)
			continue
		}
		delay = time.Duration(s.cfg.RetryInitialMS) * time.Millisecond
		err = s.consume(ctx, sess, emit)
		sess.close()
		switch {
		case errors.Is(err, errLost):
			continue // reconnect; unacknowledged messages come again
		case ctx.Err() != nil:
			return nil
		case err != nil:
			return err
		}
	}
}

// consume emits the session's messages in batches until ctx is done, the
// connection is lost (errLost) or Emit fails.
func (s *Source) consume(ctx context.Context, sess *session, emit connector.Emitter) error {
	batch := make([]*events.Event, 0, maxBatch)
	msgs := make([]message, 0, maxBatch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		var ended error
		// Wait for the first message of a batch.
		select {
		case <-ctx.Done():
			return nil
		case <-sess.lost:
			return errLost
		case m := <-sess.msgs:
			batch = append(batch, s.event(m))
			msgs = append(msgs, m)
		}
		timer.Reset(maxWait)
	fill:
		for len(batch) < maxBatch {
			select {
			case <-ctx.Done():
				return nil // nothing acknowledged: redelivered next time
			case <-sess.lost:
				ended = errLost // emit what arrived; acks would be dropped
				break fill
			case m := <-sess.msgs:
				batch = append(batch, s.event(m))
				msgs = append(msgs, m)
			case <-timer.C:
				break fill
			}
		}
		timer.Stop()
		err := emit.Emit(ctx, batch)
		clear(batch)
		batch = batch[:0]
		if err != nil {
			clear(msgs)
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("mqtt: emit: %w", err)
		}
		for _, m := range msgs {
			m.ack() // in the order received, as MQTT requires
		}
		clear(msgs)
		msgs = msgs[:0]
		if ended != nil {
			return ended
		}
	}
}

// event turns a message into a record event.
func (s *Source) event(m message) *events.Event {
	e := &events.Event{
		Type:      events.Record,
		Stream:    m.topic,
		Timestamp: m.at,
		Key:       jsonOf(m.topic),
		Source:    &events.SourceInfo{Connector: "mqtt", Table: m.topic},
	}
	switch {
	case s.cfg.ParseJSONPayload && json.Valid(m.payload):
		e.Data = events.RawPayload(append([]byte(nil), m.payload...))
	case utf8.Valid(m.payload):
		e.Data = events.RawPayload(jsonOf(string(m.payload)))
	default:
		e.Data = events.RawPayload(jsonOf(base64.StdEncoding.EncodeToString(m.payload)))
		e.Metadata.Set("payload_encoding", jsonOf("base64"))
	}
	if !s.cfg.IncludeMetadata {
		return e
	}
	e.Metadata.Set("mqtt_topic", jsonOf(m.topic))
	e.Metadata.Set("qos", jsonOf(m.qos))
	e.Metadata.Set("retained", jsonOf(m.retained))
	e.Metadata.Set("message_id", jsonOf(m.id))
	if p := m.props; p != nil {
		if len(p.User) > 0 {
			// A list of pairs, not an object: MQTT 5 user properties are
			// ordered and a name may repeat.
			type pair struct {
				Key   string `json:"key"`
				Value string `json:"value"`
			}
			ps := make([]pair, len(p.User))
			for i, u := range p.User {
				ps[i] = pair{u.Key, u.Value}
			}
			e.Metadata.Set("user_properties", jsonOf(ps))
		}
		if p.ContentType != "" {
			e.Metadata.Set("content_type", jsonOf(p.ContentType))
		}
		if p.ResponseTopic != "" {
			e.Metadata.Set("response_topic", jsonOf(p.ResponseTopic))
		}
		if len(p.CorrelationData) > 0 {
			// Binary by definition: base64, like a binary payload.
			e.Metadata.Set("correlation_data", jsonOf(base64.StdEncoding.EncodeToString(p.CorrelationData)))
		}
		if p.MessageExpiry != nil {
			e.Metadata.Set("message_expiry_secs", jsonOf(*p.MessageExpiry))
		}
	}
	return e
}

func jsonOf(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}
