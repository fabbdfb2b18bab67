package mqtt

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/packets"
	paho5 "github.com/eclipse/paho.golang/paho"
	pahosession "github.com/eclipse/paho.golang/paho/session"
	"github.com/eclipse/paho.golang/paho/session/state"
)

// MQTT 5 through github.com/eclipse/paho.golang. Its client takes an open
// network connection and does not reconnect (autopaho would, with its own
// loop); Read's loop reconnects, as for 3.1.1.

// sendAcksInterval is how often paho.golang sends the acknowledgements
// marked with Client.Ack (it batches them to keep them in order). Short,
// so that acks follow Emit closely.
const sendAcksInterval = 10 * time.Millisecond

// conn5 is a connected paho.golang client.
type conn5 struct {
	client *paho5.Client
	acks   *ackCounter
}

// ackCounter is the client's session state, counting the acknowledgements
// that went to the wire, so that a clean disconnect can wait for those the
// read loop asked for: paho.golang sends them from a ticker and drops the
// unsent ones when the connection closes.
type ackCounter struct {
	pahosession.SessionManager
	wanted atomic.Int64  // Client.Ack calls that were accepted
	sent   atomic.Int64  // acknowledgements handed to the session state
	signal chan struct{} // poked after each sent one (buffered, 1)
}

func (a *ackCounter) Ack(pb *packets.Publish) error {
	err := a.SessionManager.Ack(pb)
	a.sent.Add(1)
	select {
	case a.signal <- struct{}{}:
	default:
	}
	return err
}

// connectPacket is the CONNECT: clean_session maps to Clean Start plus a
// Session Expiry Interval (0, the default, ends the session with the
// connection), max_inflight to Receive Maximum.
func (s *Source) connectPacket(probe bool) *paho5.Connect {
	recvMax := uint16(s.cfg.MaxInflight)
	cp := &paho5.Connect{
		ClientID:   s.clientID,
		KeepAlive:  uint16(s.cfg.KeepAliveSecs),
		CleanStart: s.cfg.CleanSession,
		Properties: &paho5.ConnectProperties{ReceiveMaximum: &recvMax, RequestProblemInfo: true},
	}
	if a := s.cfg.Auth; a != nil {
		cp.Username, cp.UsernameFlag = a.Username, a.Username != ""
		cp.Password, cp.PasswordFlag = []byte(a.Password), a.Password != ""
	}
	if probe {
		cp.ClientID, cp.CleanStart = s.checkClientID(), true
		return cp
	}
	if !s.cfg.CleanSession {
		expiry := uint32(defaultSessionExpiry)
		if s.cfg.SessionExpirySecs != nil {
			expiry = *s.cfg.SessionExpirySecs
		}
		cp.Properties.SessionExpiryInterval = &expiry
	}
	if w := s.cfg.LastWill; w != nil {
		cp.WillMessage = &paho5.WillMessage{Topic: w.Topic, Payload: []byte(w.Message), QoS: qosLevels[w.QoS], Retain: w.Retain}
		// The message is YAML text, so UTF-8: say so (Payload Format
		// Indicator 1). No Will Delay Interval: published at once, as
		// with 3.1.1.
		utf8Payload := byte(1)
		cp.WillProperties = &paho5.WillProperties{PayloadFormat: &utf8Payload}
	}
	return cp
}

func (s *Source) open5(ctx context.Context, sess *session, probe bool) error {
	ctx, cancel := context.WithTimeout(ctx, s.connectTimeout())
	defer cancel()
	nc, err := s.openConn(ctx)
	if err != nil {
		return err
	}
	acks := &ackCounter{SessionManager: state.NewInMemory(), signal: make(chan struct{}, 1)}
	c := &conn5{acks: acks}
	c.client = paho5.NewClient(paho5.ClientConfig{
		// Acks (from the ack ticker), pings and DISCONNECT are written
		// from different goroutines; tls.Conn needs the lock.
		Conn:                       packets.NewThreadSafeConn(nc),
		Session:                    acks,
		PacketTimeout:              s.connectTimeout(),
		EnableManualAcknowledgment: true, // ack only after Emit returned
		SendAcksInterval:           sendAcksInterval,
		// One handler for every PUBLISH, also those redelivered right
		// after CONNACK, once per PUBLISH.
		OnPublishReceived: []func(paho5.PublishReceived) (bool, error){func(pr paho5.PublishReceived) (bool, error) {
			p := pr.Packet
			sess.deliver(message{
				topic:    p.Topic,
				payload:  p.Payload,
				qos:      p.QoS,
				retained: p.Retain,
				id:       p.PacketID,
				props:    p.Properties,
				ack:      func() { c.ack(p) },
			})
			return true, nil
		}},
	})
	ca, err := c.client.Connect(ctx, s.connectPacket(probe))
	if err != nil {
		// Connect closed the network connection.
		_ = acks.Close()
		if ca != nil && ca.ReasonCode >= 0x80 {
			return connackError(ca)
		}
		return err
	}
	sess.conn, sess.lost = c, c.client.Done()
	return nil
}

// connackError describes a refused connection without echoing anything
// the client sent.
func connackError(ca *paho5.Connack) error {
	reason, _, _ := strings.Cut((&packets.Connack{ReasonCode: ca.ReasonCode}).Reason(), " - ")
	msg := fmt.Sprintf("the broker refused the connection: %s (reason code 0x%02X)", reason, ca.ReasonCode)
	if ca.Properties != nil && ca.Properties.ReasonString != "" {
		msg += ": " + ca.Properties.ReasonString
	}
	return fmt.Errorf("%s", msg)
}

// ack marks a QoS 1/2 message acknowledged; the client sends the PUBACK or
// PUBREC in receive order. After the connection closed, Ack finds the
// message no more and nothing is sent: the broker redelivers it.
func (c *conn5) ack(p *paho5.Publish) {
	if p.QoS > 0 && c.client.Ack(p) == nil {
		c.acks.wanted.Add(1)
	}
}

func (c *conn5) subscribe(ctx context.Context, filters []string, qos byte) error {
	subs := make([]paho5.SubscribeOptions, len(filters))
	for i, f := range filters {
		subs[i] = paho5.SubscribeOptions{Topic: f, QoS: qos}
	}
	sa, err := c.client.Subscribe(ctx, &paho5.Subscribe{Subscriptions: subs})
	if sa != nil {
		for i, r := range sa.Reasons {
			if r >= 0x80 && i < len(filters) {
				reason, _, _ := strings.Cut(sa.Packet().Reason(i), " - ")
				return fmt.Errorf("the broker refused the subscription to %q: %s (reason code 0x%02X)", filters[i], reason, r)
			}
		}
	}
	return err
}

// disconnect waits (at most quiesce, and only while the connection is up)
// until the acknowledgements asked for are sent, then sends DISCONNECT
// with reason 0 (normal: no will) and closes the connection.
func (c *conn5) disconnect() {
	t := time.NewTimer(quiesce)
	defer t.Stop()
wait:
	for c.acks.sent.Load() < c.acks.wanted.Load() {
		select {
		case <-c.acks.signal:
		case <-c.client.Done():
			break wait
		case <-t.C:
			break wait
		}
	}
	_ = c.client.Disconnect(&paho5.Disconnect{ReasonCode: 0})
	_ = c.acks.Close()
}
