package mqtt

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/testenv"
)

// Messages published at QoS 0, 1 and 2 arrive with min(published,
// subscribed) QoS, and every one is acknowledged: a restart with the same
// persistent session gets none of them again.
func TestQoSLevels(t *testing.T) {
	testenv.RequireService(t, "mosquitto", brokerAddr)
	versions(t, func(t *testing.T, version string) {
		for _, tc := range []struct {
			sub  string
			want string // delivered QoS of messages published at 0, 1, 2
		}{{"exactly_once", "0,1,2"}, {"at_least_once", "0,1,1"}, {"at_most_once", "0,0,0"}} {
			t.Run(tc.sub, func(t *testing.T) {
				base := unique(t)
				cfg := baseConfig(base + "/#")
				cfg.QoS, cfg.ProtocolVersion, cfg.CleanSession = tc.sub, version, false
				cfg.ClientID = "rivven-q-" + base[len(base)-12:]
				t.Cleanup(func() { dropSession(cfg.ClientID) })
				r := start(t, cfg, nil, nil)
				pub := publisher(t)
				for q := byte(0); q <= 2; q++ {
					publish(t, pub, base+"/q"+string('0'+q), q, "x")
				}
				got := r.until(t, base+"/q2")
				var qs []string
				for _, e := range got {
					v, _ := e.Metadata.Get("qos")
					qs = append(qs, string(v))
				}
				if len(got) != 3 || strings.Join(qs, ",") != tc.want {
					t.Fatalf("got %d events with qos %s, want %s", len(got), strings.Join(qs, ","), tc.want)
				}
				r.stop(t)

				r = start(t, cfg, nil, nil)
				publish(t, pub, base+"/end", 1, "end")
				if got := r.until(t, base+"/end"); len(got) != 1 {
					t.Errorf("acknowledged messages came again: %d events", len(got))
				}
			})
		}
	})
}

// MQTT 5 publish properties land in the metadata; a 3.1.1 source sees
// none of them.
func TestMQTT5Properties(t *testing.T) {
	testenv.RequireService(t, "mosquitto", brokerAddr)
	versions(t, func(t *testing.T, version string) {
		base := unique(t)
		cfg := baseConfig(base + "/#")
		cfg.ProtocolVersion, cfg.QoS = version, "at_least_once"
		r := start(t, cfg, nil, nil)
		pub := publisher5(t)
		expiry := uint32(600)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := pub.Publish(ctx, &paho5.Publish{
			Topic: base + "/props", QoS: 1, Payload: []byte(`{"t":21.5}`),
			Properties: &paho5.PublishProperties{
				User:            paho5.UserProperties{{Key: "device", Value: "a1"}, {Key: "tag", Value: "x"}, {Key: "tag", Value: "y"}},
				ContentType:     "application/json",
				ResponseTopic:   base + "/reply",
				CorrelationData: []byte{0x01, 0xfe},
				MessageExpiry:   &expiry,
			},
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := pub.Publish(ctx, &paho5.Publish{Topic: base + "/plain", QoS: 1, Payload: []byte("p")}); err != nil {
			t.Fatal(err)
		}
		got := r.until(t, base+"/plain")
		if len(got) != 2 || data(t, got[0]) != `{"t":21.5}` {
			t.Fatalf("got %d events", len(got))
		}
		meta := func(i int, k string) string {
			v, _ := got[i].Metadata.Get(k)
			return string(v)
		}
		v5Keys := []string{"user_properties", "content_type", "response_topic", "correlation_data", "message_expiry_secs"}
		if version == "3.1.1" {
			for _, k := range v5Keys {
				if v := meta(0, k); v != "" {
					t.Errorf("3.1.1: %s %s", k, v)
				}
			}
			return
		}
		if v := meta(0, "user_properties"); v != `[{"key":"device","value":"a1"},{"key":"tag","value":"x"},{"key":"tag","value":"y"}]` {
			t.Errorf("user_properties %s", v)
		}
		if v := meta(0, "content_type"); v != `"application/json"` {
			t.Errorf("content_type %s", v)
		}
		if v := meta(0, "response_topic"); v != string(jsonOf(base+"/reply")) {
			t.Errorf("response_topic %s", v)
		}
		if v := meta(0, "correlation_data"); v != `"Af4="` {
			t.Errorf("correlation_data %s", v)
		}
		// The broker forwards what is left of the lifetime.
		var left uint32
		if err := json.Unmarshal([]byte(meta(0, "message_expiry_secs")), &left); err != nil || left == 0 || left > 600 {
			t.Errorf("message_expiry_secs %s", meta(0, "message_expiry_secs"))
		}
		for _, k := range v5Keys {
			if v := meta(1, k); v != "" {
				t.Errorf("message without properties: %s %s", k, v)
			}
		}
		if v := meta(1, "qos"); v != "1" {
			t.Errorf("qos %s", v)
		}
	})
}

// With clean_session: true (Clean Start 1, Session Expiry 0) on MQTT 5 the
// broker forgets the subscription when the source disconnects: what is
// published meanwhile is not delivered later.
func TestMQTT5CleanSessionForgets(t *testing.T) {
	testenv.RequireService(t, "mosquitto", brokerAddr)
	base := unique(t)
	cfg := baseConfig(base + "/#")
	cfg.ProtocolVersion, cfg.QoS = "5", "at_least_once"
	cfg.ClientID = "rivven-c-" + base[len(base)-12:]
	t.Cleanup(func() { dropSession(cfg.ClientID) })
	r := start(t, cfg, nil, nil)
	pub := publisher(t)
	publish(t, pub, base+"/a", 1, "a")
	r.until(t, base+"/a")
	r.stop(t)
	publish(t, pub, base+"/lost", 1, "lost")
	r = start(t, cfg, nil, nil)
	publish(t, pub, base+"/b", 1, "b")
	if got := r.until(t, base+"/b"); len(got) != 1 {
		t.Errorf("got %d events: the clean session kept messages", len(got))
	}
}

// A persistent session (3.1.1: clean session 0; 5: Clean Start 0 with a
// Session Expiry Interval, here session_expiry_secs) keeps the
// subscription while the source is away: what is published meanwhile
// comes on the next run.
func TestPersistentSessionKeepsMessagesWhileAway(t *testing.T) {
	testenv.RequireService(t, "mosquitto", brokerAddr)
	versions(t, func(t *testing.T, version string) {
		base := unique(t)
		cfg := baseConfig(base + "/#")
		cfg.ProtocolVersion, cfg.QoS, cfg.CleanSession = version, "at_least_once", false
		if version == "5" {
			expiry := uint32(60)
			cfg.SessionExpirySecs = &expiry
		}
		cfg.ClientID = "rivven-p-" + base[len(base)-12:]
		t.Cleanup(func() { dropSession(cfg.ClientID) })
		r := start(t, cfg, nil, nil)
		pub := publisher(t)
		publish(t, pub, base+"/before", 1, "before")
		r.until(t, base+"/before")
		r.stop(t)
		publish(t, pub, base+"/away", 1, "away")
		r = start(t, cfg, nil, nil)
		publish(t, pub, base+"/after", 1, "after")
		got := r.until(t, base+"/after")
		if len(got) != 2 || got[0].Stream != base+"/away" {
			t.Fatalf("got %d events, first on %s", len(got), got[0].Stream)
		}
	})
}

// Nothing is acknowledged while Emit runs: the connection drops while the
// batch holding m1 is being published, and the broker, which never got a
// PUBACK/PUBREC, delivers m1 again after the reconnect.
func TestAckOnlyAfterEmit(t *testing.T) {
	testenv.RequireService(t, "mosquitto", brokerAddr)
	versions(t, func(t *testing.T, version string) {
		for _, qos := range []string{"at_least_once", "exactly_once"} {
			t.Run(qos, func(t *testing.T) {
				base := unique(t)
				cfg := baseConfig(base + "/#")
				cfg.ProtocolVersion, cfg.QoS, cfg.CleanSession = version, qos, false
				cfg.ClientID = "rivven-a-" + base[len(base)-12:]
				t.Cleanup(func() { dropSession(cfg.ClientID) })
				src, err := New(context.Background(), cfg)
				if err != nil {
					t.Fatal(err)
				}
				s := src.(*Source)
				var mu sync.Mutex
				var conns []*droppable
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
				subscribed := make(chan struct{}, 10)
				s.subscribed = func() { subscribed <- struct{}{} }
				inEmit, release := make(chan struct{}), make(chan struct{})
				got := make(chan string, 10)
				first := true
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() {
					done <- s.Read(ctx, nil, connector.EmitterFunc(func(_ context.Context, b []*events.Event) error {
						if first {
							first = false
							close(inEmit)
							<-release
						}
						for _, e := range b {
							got <- e.Stream
						}
						return nil
					}))
				}()
				defer func() {
					cancel()
					if err := <-done; err != nil {
						t.Errorf("Read: %v", err)
					}
				}()
				wait := func(c <-chan struct{}, what string) {
					t.Helper()
					select {
					case <-c:
					case err := <-done:
						t.Fatalf("Read returned: %v", err)
					case <-time.After(15 * time.Second):
						t.Fatalf("no %s after 15s", what)
					}
				}
				wait(subscribed, "subscription")
				publish(t, publisher(t), base+"/m1", 2, "m1")
				wait(inEmit, "Emit")
				mu.Lock()
				conns[0].drop()
				mu.Unlock()
				close(release)
				var streams []string
				for len(streams) < 2 {
					select {
					case st := <-got:
						streams = append(streams, st)
					case <-time.After(15 * time.Second):
						t.Fatalf("m1 was not delivered again (got %v): acknowledged before Emit returned?", streams)
					}
				}
				if streams[0] != base+"/m1" || streams[1] != base+"/m1" {
					t.Errorf("streams %v", streams)
				}
			})
		}
	})
}
