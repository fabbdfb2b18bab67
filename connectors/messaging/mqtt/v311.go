package mqtt

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// MQTT 3.1.1 through Eclipse Paho (github.com/eclipse/paho.mqtt.golang).

// conn311 is a connected Paho v3 client.
type conn311 struct {
	s      *Source
	client paho.Client
}

func (s *Source) options311(sess *session, probe bool, lost func()) *paho.ClientOptions {
	o := paho.NewClientOptions().
		AddBroker(s.broker).
		SetClientID(s.clientID).
		SetProtocolVersion(4). // MQTT 3.1.1
		SetCleanSession(s.cfg.CleanSession).
		SetKeepAlive(time.Duration(s.cfg.KeepAliveSecs) * time.Second).
		SetConnectTimeout(s.connectTimeout()).
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
	if w := s.cfg.LastWill; w != nil && !probe {
		o.SetWill(w.Topic, w.Message, qosLevels[w.QoS], w.Retain)
	}
	if probe {
		o.SetClientID(s.checkClientID()).SetCleanSession(true)
	}
	if s.dial != nil {
		// Only tests set the hook; otherwise Paho dials itself (which
		// also honours proxy settings from the environment).
		o.SetCustomOpenConnectionFn(func(*url.URL, paho.ClientOptions) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(context.Background(), s.connectTimeout())
			defer cancel()
			return s.openConn(ctx)
		})
	}
	// Every PUBLISH goes to this one handler, once, also those the broker
	// redelivers right after CONNACK (before SUBSCRIBE): no per-filter
	// routes, which would dispatch a message matching two filters twice.
	o.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
		sess.deliver(message{
			topic:    m.Topic(),
			payload:  m.Payload(),
			qos:      m.Qos(),
			retained: m.Retained(),
			id:       m.MessageID(),
			ack:      m.Ack,
		})
	})
	o.SetConnectionLostHandler(func(paho.Client, error) { lost() })
	return o
}

func (s *Source) open311(ctx context.Context, sess *session, probe bool) error {
	lost := make(chan struct{})
	var once sync.Once
	c := paho.NewClient(s.options311(sess, probe, func() { once.Do(func() { close(lost) }) }))
	if err := s.wait(ctx, c.Connect()); err != nil {
		c.Disconnect(0)
		return err
	}
	sess.conn, sess.lost = &conn311{s: s, client: c}, lost
	return nil
}

// wait waits for a token, ctx or the connect timeout.
func (s *Source) wait(ctx context.Context, t paho.Token) error {
	timer := time.NewTimer(s.connectTimeout())
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

func (c *conn311) subscribe(ctx context.Context, filters []string, qos byte) error {
	m := make(map[string]byte, len(filters))
	for _, f := range filters {
		m[f] = qos
	}
	tok := c.client.SubscribeMultiple(m, nil)
	if err := c.s.wait(ctx, tok); err != nil {
		return err
	}
	for f, q := range tok.(*paho.SubscribeToken).Result() {
		if q == 0x80 {
			return fmt.Errorf("the broker refused the subscription to %q", f)
		}
	}
	return nil
}

// disconnect lets Paho send what it has queued (acks included) for up to
// quiesce, then sends DISCONNECT.
func (c *conn311) disconnect() { c.client.Disconnect(uint(quiesce / time.Millisecond)) }
