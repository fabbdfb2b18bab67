// Package mqtt is a source that subscribes to MQTT 3.1.1 topic filters
// (wildcards + and #) and emits every message as a record event. QoS 1 and 2
// messages are acknowledged to the broker only after the batch holding them
// was durably published, so with a persistent session (clean_session: false
// and a fixed client_id) nothing acknowledged is lost and nothing
// unacknowledged is forgotten: the broker redelivers it on reconnect.
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
	"sync"
	"time"
	"unicode/utf8"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/rivven/rivven-connect/connectors/catalog"
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/pipeline"
	"github.com/rivven/rivven-connect/shared/spec"
)

func init() {
	catalog.RegisterSource[Config](catalog.Meta{
		Name:        "mqtt",
		Aliases:     []string{"mqtt-source"},
		Category:    catalog.Messaging,
		Subcategory: "MQTT",
		Description: "Subscribes to MQTT 3.1.1 topic filters (wildcards + and #) and emits each message as a record; QoS 1/2 messages are acknowledged only after they are durably published.",
		Tags:        []string{"mqtt", "iot", "mosquitto", "pubsub", "broker", "sensors"},
	}, New)
}

// Config is the mqtt source's config block.
type Config struct {
	BrokerURL          string    `yaml:"broker_url" required:"true" doc:"MQTT broker URL: mqtt:// (or tcp://) for plain TCP, mqtts:// (or ssl://) for TLS. The port defaults to 1883 and 8883."`
	Topics             []string  `yaml:"topics" required:"true" doc:"MQTT topic filters to subscribe to; + matches one level, # (last) any number of levels."`
	ClientID           string    `yaml:"client_id" doc:"Client identifier; generated (rivven-<random>) when empty. Required with clean_session: false, so that the session can be resumed."`
	QoS                string    `yaml:"qos" default:"at_most_once" enum:"at_most_once,at_least_once,exactly_once" doc:"Quality of Service of the subscriptions."`
	CleanSession       bool      `yaml:"clean_session" default:"true" doc:"Start with a clean session. false keeps the subscriptions and unacknowledged QoS 1/2 messages at the broker across reconnects."`
	Auth               *Auth     `yaml:"auth" doc:"Username and password authentication."`
	TLS                *TLS      `yaml:"tls" doc:"TLS settings for mqtts:// and ssl:// URLs."`
	KeepAliveSecs      int       `yaml:"keep_alive_secs" default:"60" min:"1" max:"65535" doc:"Keep-alive interval in seconds."`
	ConnectTimeoutSecs int       `yaml:"connect_timeout_secs" default:"30" min:"1" doc:"Connection timeout in seconds (connect, subscribe)."`
	MaxInflight        int       `yaml:"max_inflight" default:"100" min:"1" max:"65535" doc:"Max received messages not yet published and acknowledged; when reached the source stops reading from the broker (back-pressure)."`
	RetryInitialMS     int       `yaml:"retry_initial_ms" default:"100" min:"1" doc:"Initial reconnect backoff delay in milliseconds."`
	RetryMaxMS         int       `yaml:"retry_max_ms" default:"10000" min:"1" doc:"Maximum reconnect backoff delay in milliseconds."`
	RetryMultiplier    float64   `yaml:"retry_multiplier" default:"2.0" min:"1" doc:"Backoff multiplier applied after each failed connection attempt."`
	ParseJSONPayload   bool      `yaml:"parse_json_payload" default:"true" doc:"Use a payload that is valid JSON as the event data; otherwise (or when false) the data is the payload as a JSON string (base64 when not UTF-8)."`
	IncludeMetadata    bool      `yaml:"include_metadata" default:"true" doc:"Add mqtt_topic, qos, retained and message_id to the event metadata."`
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
	broker   string
	clientID string
	qos      byte
	tlsCfg   *tls.Config

	// Test hooks: dial replaces paho's dialer, subscribed is called once
	// the subscriptions are in place.
	dial       paho.OpenConnectionFunc
	subscribed func()
}

// New builds an mqtt source.
func New(cfg *Config) (pipeline.Source, error) {
	if ps := cfg.Validate(); len(ps) > 0 {
		return nil, pipeline.Fatal(spec.Problems(ps))
	}
	s := &Source{cfg: *cfg, qos: qosLevels[cfg.QoS], clientID: cfg.ClientID}
	s.broker, _ = brokerURI(cfg.BrokerURL)
	if s.clientID == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		s.clientID = "rivven-" + hex.EncodeToString(b[:])
	}
	if isTLS(cfg.BrokerURL) {
		t, err := tlsConfig(cfg.TLS)
		if err != nil {
			return nil, pipeline.Fatal(err)
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

// received is one message with the time it arrived.
type received struct {
	msg paho.Message
	at  time.Time
}

// session is one connection: its client, the messages it delivers and a
// channel closed when the connection is lost.
type session struct {
	client   paho.Client
	msgs     chan received
	stop     chan struct{} // closed to release a handler blocked on msgs
	lost     chan struct{} // closed when the connection is lost
	lostOnce sync.Once
}

func (s *Source) options(sess *session) *paho.ClientOptions {
	o := paho.NewClientOptions().
		AddBroker(s.broker).
		SetClientID(s.clientID).
		SetProtocolVersion(4). // MQTT 3.1.1
		SetCleanSession(s.cfg.CleanSession).
		SetKeepAlive(time.Duration(s.cfg.KeepAliveSecs) * time.Second).
		SetConnectTimeout(time.Duration(s.cfg.ConnectTimeoutSecs) * time.Second).
		SetAutoReconnect(false). // Read reconnects, with the configured backoff
		SetConnectRetry(false).
		SetResumeSubs(false).
		SetOrderMatters(true).
		SetAutoAckDisabled(true) // ack only after Emit returned
	if s.tlsCfg != nil {
		o.SetTLSConfig(s.tlsCfg)
	}
	if a := s.cfg.Auth; a != nil {
		o.SetUsername(a.Username).SetPassword(a.Password)
	}
	if w := s.cfg.LastWill; w != nil {
		o.SetWill(w.Topic, w.Message, qosLevels[w.QoS], w.Retain)
	}
	if s.dial != nil {
		o.SetCustomOpenConnectionFn(s.dial)
	}
	if sess != nil {
		// Every PUBLISH goes to this one handler, once, also those the
		// broker redelivers right after CONNACK (before SUBSCRIBE): no
		// per-filter routes, which would dispatch a message matching two
		// filters twice.
		o.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			select {
			case sess.msgs <- received{msg: m, at: time.Now().UTC()}:
			case <-sess.stop:
			}
		})
		o.SetConnectionLostHandler(func(paho.Client, error) {
			sess.lostOnce.Do(func() { close(sess.lost) })
		})
	}
	return o
}

// wait waits for a token, ctx or the connect timeout.
func (s *Source) wait(ctx context.Context, t paho.Token) error {
	timer := time.NewTimer(time.Duration(s.cfg.ConnectTimeoutSecs) * time.Second)
	defer timer.Stop()
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return errors.New("timed out")
	}
}

// Check connects to the broker and disconnects.
func (s *Source) Check(ctx context.Context) error {
	o := s.options(nil)
	o.SetClientID(s.clientID + "-check") // do not take over the session of a running source
	o.SetCleanSession(true)
	o.UnsetWill()
	c := paho.NewClient(o)
	if err := s.wait(ctx, c.Connect()); err != nil {
		c.Disconnect(0)
		return fmt.Errorf("mqtt: connect to %s: %w", s.cfg.BrokerURL, err)
	}
	c.Disconnect(250)
	return nil
}

// connect opens a session and subscribes.
func (s *Source) connect(ctx context.Context) (*session, error) {
	sess := &session{
		msgs: make(chan received, s.cfg.MaxInflight),
		stop: make(chan struct{}),
		lost: make(chan struct{}),
	}
	sess.client = paho.NewClient(s.options(sess))
	if err := s.wait(ctx, sess.client.Connect()); err != nil {
		sess.close(0)
		return nil, fmt.Errorf("mqtt: connect to %s: %w", s.cfg.BrokerURL, err)
	}
	filters := make(map[string]byte, len(s.cfg.Topics))
	for _, t := range s.cfg.Topics {
		filters[t] = s.qos
	}
	tok := sess.client.SubscribeMultiple(filters, nil)
	if err := s.wait(ctx, tok); err != nil {
		sess.close(0)
		return nil, fmt.Errorf("mqtt: subscribe: %w", err)
	}
	for f, q := range tok.(*paho.SubscribeToken).Result() {
		if q == 0x80 {
			sess.close(250)
			return nil, fmt.Errorf("mqtt: the broker refused the subscription to %q", f)
		}
	}
	if s.subscribed != nil {
		s.subscribed()
	}
	return sess, nil
}

func (sess *session) close(quiesce uint) {
	close(sess.stop)
	sess.client.Disconnect(quiesce)
}

// Batching: a batch is emitted when it holds maxBatch messages or
// maxWait after its first message arrived.
const (
	maxBatch = 100
	maxWait  = 50 * time.Millisecond
)

// errLost ends a session whose connection dropped.
var errLost = errors.New("connection lost")

// Read subscribes and emits batches until ctx is done (then it returns
// nil) or Emit fails (then it returns the error, leaving the batch's
// messages unacknowledged). MQTT has no replayable offsets: resume is
// ignored and events carry no position; durability comes from QoS 1/2 with
// a persistent session (clean_session: false).
func (s *Source) Read(ctx context.Context, _ []byte, emit pipeline.Emitter) error {
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
		sess.close(250)
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
func (s *Source) consume(ctx context.Context, sess *session, emit pipeline.Emitter) error {
	batch := make([]*events.Event, 0, maxBatch)
	msgs := make([]paho.Message, 0, maxBatch)
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
		case r := <-sess.msgs:
			batch = append(batch, s.event(r))
			msgs = append(msgs, r.msg)
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
			case r := <-sess.msgs:
				batch = append(batch, s.event(r))
				msgs = append(msgs, r.msg)
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
			m.Ack() // in the order received, as MQTT requires
		}
		clear(msgs)
		msgs = msgs[:0]
		if ended != nil {
			return ended
		}
	}
}

// event turns a message into a record event.
func (s *Source) event(r received) *events.Event {
	m := r.msg
	topic := m.Topic()
	payload := m.Payload()
	e := &events.Event{
		Type:      events.Record,
		Stream:    topic,
		Timestamp: r.at,
		Key:       jsonOf(topic),
		Source:    &events.SourceInfo{Connector: "mqtt", Table: topic},
	}
	switch {
	case s.cfg.ParseJSONPayload && json.Valid(payload):
		e.Data = events.RawPayload(append([]byte(nil), payload...))
	case utf8.Valid(payload):
		e.Data = events.RawPayload(jsonOf(string(payload)))
	default:
		e.Data = events.RawPayload(jsonOf(base64.StdEncoding.EncodeToString(payload)))
		e.Metadata.Set("payload_encoding", jsonOf("base64"))
	}
	if s.cfg.IncludeMetadata {
		e.Metadata.Set("mqtt_topic", jsonOf(topic))
		e.Metadata.Set("qos", jsonOf(m.Qos()))
		e.Metadata.Set("retained", jsonOf(m.Retained()))
		e.Metadata.Set("message_id", jsonOf(m.MessageID()))
	}
	return e
}

func jsonOf(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}
