package httpwebhook

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/spec"
)

// newSink decodes a config the way a pipeline's is (defaults, checks)
// and builds the sink with a clock that records waits instead of
// sleeping.
func newSink(t *testing.T, src string) (*Sink, *fakeClock) {
	t.Helper()
	cfg, ps := spec.DecodeString[Config](src, "sinks.hook.config")
	if len(ps) > 0 {
		t.Fatalf("config problems: %v", ps)
	}
	c, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := c.(*Sink)
	clk := &fakeClock{now: time.Now()}
	s.clock = clk
	s.rand = func() float64 { return 0.5 } // no jitter: waits are the policy's base
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s, clk
}

// fakeClock advances by the waits asked of it.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waits = append(c.waits, d)
	c.now = c.now.Add(d)
	return ctx.Err()
}

func (c *fakeClock) Waits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.waits...)
}

// delivered is an insert as a trigger delivers it: from topic at
// partition 0 and offset off.
func delivered(topic string, off int64, data string) *events.Event {
	e := &events.Event{
		Type:      events.Insert,
		Stream:    "orders",
		Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Data:      events.RawPayload([]byte(data)),
		Key:       []byte(fmt.Sprintf(`{"id":%d}`, off)),
		Metadata:  events.Metadata{Position: fmt.Sprint(off)},
	}
	e.Delivered = &events.Position{Topic: topic, Partition: 0, Offset: off, HasOffset: true, ID: fmt.Sprintf("%s-0-%d", topic, off)}
	return e
}

func batchOf(n int) []*events.Event {
	b := make([]*events.Event, n)
	for i := range b {
		b[i] = delivered("orders", int64(100+i), fmt.Sprintf(`{"id":%d,"note":"order %d"}`, 100+i, i))
	}
	return b
}

// pki is a private CA with a server certificate for 127.0.0.1 and a
// client certificate, all PEM.
type pki struct {
	caPEM, serverCert, serverKey, clientCert, clientKey string
	pool                                                *x509.CertPool
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test private CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP) (string, string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(key)
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
			string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
	}
	p := &pki{caPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})), pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	p.serverCert, p.serverKey = leaf(2, "webhook receiver", x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	p.clientCert, p.clientKey = leaf(3, "rivven sender", x509.ExtKeyUsageClientAuth, nil)
	return p
}

// yamlBlock indents PEM as a YAML literal block at the given depth.
func yamlBlock(pemText string, indent int) string {
	pad := strings.Repeat(" ", indent)
	return "|\n" + pad + strings.ReplaceAll(strings.TrimSpace(pemText), "\n", "\n"+pad)
}

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
