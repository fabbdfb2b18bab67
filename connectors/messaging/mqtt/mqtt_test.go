package mqtt

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	paho5 "github.com/eclipse/paho.golang/paho"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
	"github.com/rivven/rivven-connect/shared/testenv"
)

const brokerAddr = "127.0.0.1:1883"

func decode(src string) (*Config, []spec.Problem) {
	return spec.DecodeString[Config](src, "sources.mqtt.config")
}

func TestRegistered(t *testing.T) {
	for _, name := range []string{"mqtt", "mqtt-source"} {
		e, ok := catalog.Lookup(catalog.Source, name)
		if !ok {
			t.Fatalf("%s is not registered", name)
		}
		if e.Name != "mqtt" || e.Category != catalog.Messaging || e.Subcategory != "MQTT" {
			t.Errorf("%s: %s %s/%s", name, e.Name, e.Category, e.Subcategory)
		}
	}
}

const referenceExample = `broker_url: mqtts://broker.example.com:8883
topics:
  - sensors/+/temperature
  - sensors/+/humidity
client_id: rivven-mqtt-client
qos: at_least_once
clean_session: true
auth:
  username: user
  password: secret-pw
keep_alive_secs: 60
connect_timeout_secs: 30
max_inflight: 100
retry_initial_ms: 100
retry_max_ms: 10000
retry_multiplier: 2.0
parse_json_payload: true
include_metadata: true
last_will:
  topic: clients/rivven/status
  message: offline
  qos: at_least_once
  retain: true
`

func TestConfig(t *testing.T) {
	cfg, ps := decode(referenceExample)
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	if cfg.QoS != "at_least_once" || cfg.Auth.Password != "secret-pw" || cfg.LastWill.QoS != "at_least_once" || !cfg.LastWill.Retain || len(cfg.Topics) != 2 {
		t.Errorf("decoded %+v", cfg)
	}
	if u, _ := brokerURI(cfg.BrokerURL); u != "ssl://broker.example.com:8883" {
		t.Errorf("broker uri %s", u)
	}

	cfg, ps = decode("broker_url: mqtt://localhost\ntopics: [a/#]\n")
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	if cfg.QoS != "at_most_once" || !cfg.CleanSession || cfg.ProtocolVersion != "3.1.1" || cfg.SessionExpirySecs != nil || cfg.KeepAliveSecs != 60 || cfg.ConnectTimeoutSecs != 30 ||
		cfg.MaxInflight != 100 || cfg.RetryInitialMS != 100 || cfg.RetryMaxMS != 10000 || cfg.RetryMultiplier != 2.0 ||
		!cfg.ParseJSONPayload || !cfg.IncludeMetadata || cfg.LastWill != nil || cfg.Auth != nil || cfg.TLS != nil {
		t.Errorf("defaults %+v", cfg)
	}
	if u, _ := brokerURI(cfg.BrokerURL); u != "tcp://localhost:1883" {
		t.Errorf("broker uri %s", u)
	}
	src, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if id := src.(*Source).clientID; !strings.HasPrefix(id, "rivven-") || len(id) > 23 {
		t.Errorf("generated client id %q", id)
	}
	if cfg, _ := decode("broker_url: mqtts://h\ntopics: [a]\nlast_will: {topic: x}\n"); cfg.LastWill.QoS != "at_most_once" || cfg.LastWill.Retain {
		t.Errorf("last_will defaults %+v", cfg.LastWill)
	}

	const p = "sources.mqtt.config."
	for _, tc := range []struct{ yaml, path, msg string }{
		{"topics: [a]\n", p + "broker_url", "required"},
		{"broker_url: mqtt://h\n", p + "topics", "required"},
		{"broker_url: http://h:1883\ntopics: [a]\n", p + "broker_url", `unsupported scheme "http"`},
		{"broker_url: h:1883\ntopics: [a]\n", p + "broker_url", "mqtt://"},
		{"broker_url: mqtt://u:hunter2@h\ntopics: [a]\n", p + "broker_url", "auth.username"},
		{"broker_url: mqtt://h\ntopics: [a/#/b]\n", p + "topics[0]", "'#' must be the last level"},
		{"broker_url: mqtt://h\ntopics: [a, 'a/b#']\n", p + "topics[1]", "'#' must be a whole level"},
		{"broker_url: mqtt://h\ntopics: ['a/b+/c']\n", p + "topics[0]", "'+' must be a whole level"},
		{"broker_url: mqtt://h\ntopics: ['']\n", p + "topics[0]", "empty"},
		{"broker_url: mqtt://h\ntopics: [a]\nqos: twice\n", p + "qos", "at_least_once"},
		{"broker_url: mqtt://h\ntopics: [a]\nlast_will: {topic: x, qos: 3}\n", p + "last_will.qos", "at_least_once"},
		{"broker_url: mqtt://h\ntopics: [a]\nlast_will: {topic: x/+}\n", p + "last_will.topic", "wildcards"},
		{"broker_url: mqtt://h\ntopics: [a]\nclean_session: false\n", p + "client_id", "required with clean_session: false"},
		{"broker_url: mqtt://h\ntopics: [a]\ntls: {insecure_skip_verify: true}\n", p + "tls", "mqtts://"},
		{"broker_url: mqtt://h\ntopics: [a]\nretry_max_ms: 10\nretry_initial_ms: 50\n", p + "retry_max_ms", "retry_initial_ms"},
		{"broker_url: mqtt://h\ntopics: [a]\nretry_multiplier: 0.5\n", p + "retry_multiplier", "range"},
		{"broker_url: mqtt://h\ntopics: [a]\nqos_level: 1\n", p + "qos_level", "unknown key"},
		{"broker_url: mqtt://h\ntopics: [a]\nprotocol_version: 4\n", p + "protocol_version", `allowed: 3.1.1, 5`},
		{"broker_url: mqtt://h\ntopics: [a]\nprotocol_version: '3.1'\n", p + "protocol_version", `allowed: 3.1.1, 5`},
		{"broker_url: mqtt://h\ntopics: [a]\nclient_id: c\nclean_session: false\nsession_expiry_secs: 60\n", p + "session_expiry_secs", `only used with protocol_version: "5"`},
		{"broker_url: mqtt://h\ntopics: [a]\nprotocol_version: 5\nsession_expiry_secs: 60\n", p + "session_expiry_secs", "only used with clean_session: false"},
		{"broker_url: mqtt://h\ntopics: [a]\nprotocol_version: 5\nclient_id: c\nclean_session: false\nsession_expiry_secs: 0\n", p + "session_expiry_secs", "range"},
		{"broker_url: mqtt://h\ntopics: [a]\nprotocol_version: 5\nclient_id: c\nclean_session: false\nsession_expiry_secs: 4294967296\n", p + "session_expiry_secs", "range"},
		{"broker_url: mqtt://h\ntopics: [a]\nprotocol_version: 5\nclean_session: false\n", p + "client_id", "required with clean_session: false"},
	} {
		_, ps := decode(tc.yaml)
		if len(ps) != 1 || ps[0].Path != tc.path || !strings.Contains(ps[0].Message, tc.msg) {
			t.Errorf("%q: problems %v, want one at %s mentioning %q", tc.yaml, ps, tc.path, tc.msg)
		}
	}
	// The password is never echoed.
	_, ps = decode("broker_url: mqtt://h\ntopics: [a]\nauth: {password: [hunter2]}\n")
	if len(ps) == 0 || strings.Contains(spec.Problems(ps).Error(), "hunter2") {
		t.Errorf("problems %v", ps)
	}
}

// The MQTT 5 CONNECT carries the MQTT 5 meaning of every key.
func TestConnectPacketV5(t *testing.T) {
	cfg, ps := decode(referenceExample + "protocol_version: 5\n")
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	src, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := src.(*Source)
	cp := s.connectPacket(false)
	if cp.ClientID != "rivven-mqtt-client" || !cp.CleanStart || cp.KeepAlive != 60 || cp.Username != "user" || !cp.UsernameFlag ||
		string(cp.Password) != "secret-pw" || !cp.PasswordFlag || *cp.Properties.ReceiveMaximum != 100 || cp.Properties.SessionExpiryInterval != nil {
		t.Errorf("connect %+v %+v", cp, cp.Properties)
	}
	if w := cp.WillMessage; w == nil || w.Topic != "clients/rivven/status" || string(w.Payload) != "offline" || w.QoS != 1 || !w.Retain ||
		cp.WillProperties == nil || *cp.WillProperties.PayloadFormat != 1 || cp.WillProperties.WillDelayInterval != nil {
		t.Errorf("will %+v %+v", w, cp.WillProperties)
	}
	probe := s.connectPacket(true)
	if probe.ClientID != "rivven-mqtt-client-check" || !probe.CleanStart || probe.WillMessage != nil || probe.Properties.SessionExpiryInterval != nil {
		t.Errorf("probe %+v", probe)
	}

	// clean_session: false is Clean Start 0 plus a Session Expiry Interval.
	s.cfg.CleanSession = false
	if cp := s.connectPacket(false); cp.CleanStart || cp.Properties.SessionExpiryInterval == nil || *cp.Properties.SessionExpiryInterval != 3600 {
		t.Errorf("persistent session: clean start %v, expiry %v", cp.CleanStart, cp.Properties.SessionExpiryInterval)
	}
	week := uint32(7 * 24 * 3600)
	s.cfg.SessionExpirySecs = &week
	if cp := s.connectPacket(false); *cp.Properties.SessionExpiryInterval != week {
		t.Errorf("expiry %d", *cp.Properties.SessionExpiryInterval)
	}
	if cp := s.connectPacket(true); !cp.CleanStart || cp.Properties.SessionExpiryInterval != nil {
		t.Errorf("the probe must not open a persistent session: %+v", cp)
	}
	cfg, ps = decode("broker_url: mqtt://h\ntopics: [a]\nprotocol_version: 5\nclient_id: c\nclean_session: false\nsession_expiry_secs: 4294967295\n")
	if len(ps) > 0 || *cfg.SessionExpirySecs != 4294967295 || cfg.ProtocolVersion != "5" {
		t.Errorf("max session expiry: %v %+v", ps, cfg)
	}
}

func TestEventShape(t *testing.T) {
	s := &Source{cfg: Config{ParseJSONPayload: true, IncludeMetadata: true}}
	e := s.event(message{topic: "a/b", payload: []byte{0xff, 0x00}, qos: 1, id: 7})
	raw, _ := e.Data.JSON()
	if want := jsonOf(base64.StdEncoding.EncodeToString([]byte{0xff, 0})); string(raw) != string(want) {
		t.Errorf("binary data %s, want %s", raw, want)
	}
	if v, _ := e.Metadata.Get("payload_encoding"); string(v) != `"base64"` {
		t.Errorf("payload_encoding %s", v)
	}
	if v, _ := e.Metadata.Get("message_id"); string(v) != "7" {
		t.Errorf("message_id %s", v)
	}
	for _, k := range []string{"user_properties", "content_type", "response_topic", "correlation_data", "message_expiry_secs"} {
		if v, ok := e.Metadata.Get(k); ok {
			t.Errorf("%s %s without MQTT 5 properties", k, v)
		}
	}
}

// versions runs f once per protocol version.
func versions(t *testing.T, f func(t *testing.T, version string)) {
	for _, v := range []string{"3.1.1", "5"} {
		t.Run("v"+v, func(t *testing.T) { f(t, v) })
	}
}

// ---- integration tests against the real Mosquitto ----

func unique(t *testing.T) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "rivven-test/" + t.Name() + "/" + hex.EncodeToString(b[:])
}

func publisher(t *testing.T) paho.Client {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + brokerAddr).SetClientID("rivven-pub-" + hex.EncodeToString(b[:])))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(250) })
	return c
}

// publisher5 is an MQTT 5 client for publishing with properties.
func publisher5(t *testing.T) *paho5.Client {
	t.Helper()
	nc, err := net.DialTimeout("tcp", brokerAddr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	c := paho5.NewClient(paho5.ClientConfig{Conn: packets.NewThreadSafeConn(nc)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho5.Connect{ClientID: "rivven-pub5-" + hex.EncodeToString(b[:]), CleanStart: true, KeepAlive: 30}); err != nil {
		t.Fatalf("v5 publisher connect: %v", err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho5.Disconnect{}) })
	return c
}

func publish(t *testing.T, c paho.Client, topic string, qos byte, payload any) {
	t.Helper()
	if tok := c.Publish(topic, qos, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// running is a source being read in the background.
type running struct {
	events chan *events.Event
	done   chan error
	cancel context.CancelFunc
}

// start runs a source from cfg; fail, when set, is what Emit returns.
func start(t *testing.T, cfg *Config, fail error, hook func(*Source)) *running {
	t.Helper()
	src, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := src.(*Source)
	ready := make(chan struct{})
	var once sync.Once
	s.subscribed = func() { once.Do(func() { close(ready) }) }
	if hook != nil {
		hook(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{events: make(chan *events.Event, 1000), done: make(chan error, 1), cancel: cancel}
	go func() {
		r.done <- s.Read(ctx, nil, connector.EmitterFunc(func(_ context.Context, b []*events.Event) error {
			if fail != nil {
				return fail
			}
			for _, e := range b {
				r.events <- e
			}
			return nil
		}))
	}()
	t.Cleanup(func() { r.stop(t) })
	select {
	case <-ready:
	case err := <-r.done:
		t.Fatalf("Read returned before subscribing: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("not subscribed after 15s")
	}
	return r
}

// stop cancels the source and checks that Read returns nil.
func (r *running) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Read after cancel: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Error("Read did not return after cancel")
	}
}

// until collects events until one on stream last arrives.
func (r *running) until(t *testing.T, last string) []*events.Event {
	t.Helper()
	var got []*events.Event
	deadline := time.After(15 * time.Second)
	for {
		select {
		case e := <-r.events:
			got = append(got, e)
			if e.Stream == last {
				return got
			}
		case err := <-r.done:
			t.Fatalf("Read returned: %v", err)
		case <-deadline:
			t.Fatalf("no event on %s after 15s; got %d events", last, len(got))
		}
	}
}

func data(t *testing.T, e *events.Event) string {
	t.Helper()
	raw, err := e.Data.JSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

func baseConfig(topics ...string) *Config {
	cfg, ps := decode("broker_url: mqtt://" + brokerAddr + "\ntopics: [x]\nretry_initial_ms: 50\nretry_max_ms: 500\n")
	if len(ps) > 0 {
		panic(ps)
	}
	cfg.Topics = topics
	return cfg
}

func TestWildcards(t *testing.T) {
	testenv.RequireService(t, "mosquitto", brokerAddr)
	versions(t, testWildcards)
}

func testWildcards(t *testing.T, version string) {
	base := unique(t)
	cfg := baseConfig(base+"/+/temp", base+"/multi/#")
	cfg.ProtocolVersion = version
	r := start(t, cfg, nil, nil)
	pub := publisher(t)
	for _, topic := range []string{
		base + "/a/temp",      // +
		base + "/a/hum",       // no
		base + "/a/b/temp",    // no: + is one level
		base + "/multi",       // # matches the parent level too
		base + "/multi/x/y/z", // #
		base + "/multiple/x",  // no: # needs the level "multi"
		base + "/temp",        // no: + needs a level
	} {
		publish(t, pub, topic, 0, "v:"+topic)
	}
	publish(t, pub, base+"/end/temp", 0, "end")
	got := r.until(t, base+"/end/temp")
	var streams []string
	for _, e := range got {
		streams = append(streams, strings.TrimPrefix(e.Stream, base))
		if string(e.Key) != string(jsonOf(e.Stream)) || e.Type != events.Record || e.Source.Connector != "mqtt" || e.Source.Table != e.Stream {
			t.Errorf("event %+v", e)
		}
	}
	if want := "/a/temp,/multi,/multi/x/y/z,/end/temp"; strings.Join(streams, ",") != want {
		t.Errorf("streams %s, want %s", strings.Join(streams, ","), want)
	}
}

func TestPayloadsAndMetadata(t *testing.T) {
	testenv.RequireService(t, "mosquitto", brokerAddr)
	versions(t, testPayloadsAndMetadata)
}

func testPayloadsAndMetadata(t *testing.T, version string) {
	for _, tc := range []struct {
		parse, meta bool
	}{{true, true}, {false, false}} {
		base := unique(t)
		cfg := baseConfig(base + "/#")
		cfg.ParseJSONPayload, cfg.IncludeMetadata, cfg.QoS = tc.parse, tc.meta, "at_least_once"
		cfg.ProtocolVersion = version
		r := start(t, cfg, nil, nil)
		pub := publisher(t)
		publish(t, pub, base+"/json", 1, `{"a": 1, "b": [true]}`)
		publish(t, pub, base+"/text", 1, "not json")
		publish(t, pub, base+"/bin", 1, []byte{0xff, 0xfe, 0x00})
		got := r.until(t, base+"/bin")
		if len(got) != 3 {
			t.Fatalf("got %d events", len(got))
		}
		wantJSON := `{"a": 1, "b": [true]}`
		if !tc.parse {
			wantJSON = string(jsonOf(`{"a": 1, "b": [true]}`))
		}
		if d := data(t, got[0]); d != wantJSON {
			t.Errorf("parse=%v: json payload as %s, want %s", tc.parse, d, wantJSON)
		}
		if d := data(t, got[1]); d != `"not json"` {
			t.Errorf("text payload as %s", d)
		}
		if d := data(t, got[2]); d != `"//4A"` {
			t.Errorf("binary payload as %s", d)
		}
		for _, e := range got {
			topic, ok := e.Metadata.Get("mqtt_topic")
			qos, _ := e.Metadata.Get("qos")
			retained, _ := e.Metadata.Get("retained")
			id, _ := e.Metadata.Get("message_id")
			if !tc.meta {
				if ok {
					t.Errorf("metadata without include_metadata: %+v", e.Metadata.Extra)
				}
				continue
			}
			var n uint16
			if string(topic) != string(jsonOf(e.Stream)) || string(qos) != "1" || string(retained) != "false" || json.Unmarshal(id, &n) != nil || n == 0 {
				t.Errorf("metadata %s %s %s %s", topic, qos, retained, id)
			}
		}
		r.stop(t)
	}
}

func TestUnackedMessageIsRedelivered(t *testing.T) {
	testenv.RequireService(t, "mosquitto", brokerAddr)
	versions(t, func(t *testing.T, version string) {
		for _, qos := range []string{"at_least_once", "exactly_once"} {
			t.Run(qos, func(t *testing.T) { testRedelivery(t, version, qos) })
		}
	})
}

// testRedelivery: a message whose batch Emit refused is not acknowledged,
// and the persistent session (3.1.1: clean session 0; 5: Clean Start 0
// with the default Session Expiry Interval) keeps it for the next run.
func testRedelivery(t *testing.T, version, qos string) {
	base := unique(t)
	cfg := baseConfig(base + "/#")
	cfg.QoS, cfg.CleanSession, cfg.ProtocolVersion = qos, false, version
	cfg.ClientID = "rivven-t-" + base[len(base)-12:]
	t.Cleanup(func() { dropSession(cfg.ClientID) })

	boom := errors.New("sink down")
	r := start(t, cfg, boom, nil)
	publish(t, publisher(t), base+"/m1", 2, "first")
	select {
	case err := <-r.done:
		if !errors.Is(err, boom) {
			t.Fatalf("Read returned %v, want the emit error", err)
		}
		r.cancel()
		r.cancel = nil
	case <-time.After(15 * time.Second):
		t.Fatal("Read did not return the emit error")
	}

	// Restart with the same client id: the broker redelivers m1.
	r2 := start(t, cfg, nil, nil)
	publish(t, publisher(t), base+"/m2", 2, "second")
	got := r2.until(t, base+"/m2")
	if len(got) != 2 || got[0].Stream != base+"/m1" || data(t, got[0]) != `"first"` {
		t.Fatalf("after restart got %d events, first %v", len(got), got[0].Stream)
	}
	r2.stop(t)

	// Both were acknowledged now: a third run gets only new messages.
	r3 := start(t, cfg, nil, nil)
	publish(t, publisher(t), base+"/m3", 2, "third")
	if got := r3.until(t, base+"/m3"); len(got) != 1 {
		var streams []string
		for _, e := range got {
			streams = append(streams, strings.TrimPrefix(e.Stream, base))
		}
		t.Errorf("acknowledged messages came again: %v", streams)
	}
}

// dropSession ends the persistent session of a client id at the broker
// (a clean-session connect replaces it, whatever version made it).
func dropSession(clientID string) {
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + brokerAddr).SetClientID(clientID).SetCleanSession(true))
	if tok := c.Connect(); tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
		c.Disconnect(100)
	}
}

func TestLastWillOnAbruptDrop(t *testing.T) {
	testenv.RequireService(t, "mosquitto", brokerAddr)
	versions(t, testLastWill)
}

func testLastWill(t *testing.T, version string) {
	base := unique(t)
	willTopic := base + "/status"

	sub := publisher(t)
	wills := make(chan string, 10)
	if tok := sub.Subscribe(willTopic, 1, func(_ paho.Client, m paho.Message) { wills <- string(m.Payload()) }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}

	cfg := baseConfig(base + "/data/#")
	cfg.LastWill = &LastWill{Topic: willTopic, Message: "offline", QoS: "at_least_once"}
	cfg.ProtocolVersion = version
	var mu sync.Mutex
	var conns []*droppable
	r := start(t, cfg, nil, func(s *Source) {
		s.dial = func(ctx context.Context, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			d := &droppable{Conn: c}
			mu.Lock()
			conns = append(conns, d)
			mu.Unlock()
			return d, nil
		}
	})
	// Drop the TCP connection without an MQTT DISCONNECT.
	mu.Lock()
	conns[0].drop()
	mu.Unlock()
	select {
	case w := <-wills:
		if w != "offline" {
			t.Errorf("will %q", w)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no last will after the connection was dropped")
	}

	// The source reconnects by itself and goes on.
	pub := publisher(t)
	deadline := time.Now().Add(15 * time.Second)
	for {
		publish(t, pub, base+"/data/after", 0, "x")
		select {
		case e := <-r.events:
			if e.Stream != base+"/data/after" {
				t.Fatalf("event on %s", e.Stream)
			}
			// A clean stop sends DISCONNECT: no will.
			r.stop(t)
			select {
			case w := <-wills:
				t.Errorf("will %q after a clean disconnect", w)
			case <-time.After(500 * time.Millisecond):
			}
			return
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the source did not reconnect")
		}
	}
}

// droppable is a connection the test can drop abruptly. paho ignores the
// "use of closed network connection" error of a connection it closed
// itself, so reads after drop report a reset instead, as a real network
// failure would.
type droppable struct {
	net.Conn
	dropped atomic.Bool
}

func (d *droppable) drop() {
	d.dropped.Store(true)
	_ = d.Conn.Close()
}

func (d *droppable) Read(b []byte) (int, error) {
	n, err := d.Conn.Read(b)
	if err != nil && d.dropped.Load() {
		return n, errors.New("connection reset (dropped by the test)")
	}
	return n, err
}

func TestCheck(t *testing.T) {
	testenv.RequireService(t, "mosquitto", brokerAddr)
	versions(t, testCheck)
}

func testCheck(t *testing.T, version string) {
	cfg := baseConfig("a")
	cfg.ProtocolVersion = version
	src, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := src.(connector.Checker).Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Nothing listens on a port that was just free.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg.BrokerURL, cfg.ConnectTimeoutSecs = "mqtt://"+addr, 2
	src, _ = New(context.Background(), cfg)
	if err := src.(connector.Checker).Check(context.Background()); err == nil {
		t.Error("Check passed against a closed port")
	}
}

func TestReconnectBackoffUntilCancel(t *testing.T) {
	versions(t, testReconnectBackoff)
}

func testReconnectBackoff(t *testing.T, version string) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := baseConfig("a")
	cfg.BrokerURL, cfg.ConnectTimeoutSecs = "mqtt://"+addr, 1
	cfg.RetryInitialMS, cfg.RetryMaxMS, cfg.RetryMultiplier = 1, 20, 3
	cfg.ProtocolVersion = version
	src, _ := New(context.Background(), cfg)
	var mu sync.Mutex
	attempts := 0
	src.(*Source).dial = func(ctx context.Context, addr string) (net.Conn, error) {
		mu.Lock()
		attempts++
		mu.Unlock()
		return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- src.Read(ctx, nil, connector.EmitterFunc(func(context.Context, []*events.Event) error { return nil }))
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := attempts
		mu.Unlock()
		if n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d connection attempts", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Read after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Read did not return after cancel")
	}
}
