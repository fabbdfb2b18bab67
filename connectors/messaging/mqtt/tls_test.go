package mqtt

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/rivven/rivven-connect/shared/testenv"
)

// privateBroker is a Mosquitto the test runs itself: a TLS listener with
// password authentication on a free port, which the test can stop and
// start again (the shared broker on 1883 must stay up for other tests).
type privateBroker struct {
	t          *testing.T
	dir, port  string
	caPEM      []byte
	cmd        *exec.Cmd
	user, pass string
}

func newPrivateBroker(t *testing.T) *privateBroker {
	t.Helper()
	testenv.RequireCommand(t, "mosquitto", "mosquitto_passwd")
	b := &privateBroker{t: t, dir: t.TempDir(), user: "rivven", pass: "s3cret-pass"}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.port = fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	b.writeCerts()
	pw := filepath.Join(b.dir, "passwd")
	if out, err := exec.Command("mosquitto_passwd", "-b", "-c", pw, b.user, b.pass).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
	}
	conf := fmt.Sprintf("listener %s 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\nallow_anonymous false\npassword_file %s\npersistence false\n",
		b.port, filepath.Join(b.dir, "ca.pem"), filepath.Join(b.dir, "server.pem"), filepath.Join(b.dir, "server.key"), pw)
	if os.Getuid() == 0 {
		// As root Mosquitto drops to its own user, which cannot read the
		// test's private files; keep it as the test's user.
		conf += "user root\n"
	}
	if err := os.WriteFile(filepath.Join(b.dir, "mosquitto.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	b.start()
	t.Cleanup(b.stop)
	return b
}

// writeCerts makes a CA and a server certificate for 127.0.0.1.
func (b *privateBroker) writeCerts() {
	t := b.t
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "rivven test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(srvKey)
	b.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	for name, data := range map[string][]byte{
		"ca.pem":     b.caPEM,
		"server.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}),
		"server.key": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	} {
		if err := os.WriteFile(filepath.Join(b.dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func (b *privateBroker) start() {
	b.cmd = exec.Command("mosquitto", "-c", filepath.Join(b.dir, "mosquitto.conf"))
	var log strings.Builder
	b.cmd.Stdout, b.cmd.Stderr = &log, &log
	if err := b.cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	for range 100 {
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+b.port, 100*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.t.Fatalf("private mosquitto did not start:\n%s", log.String())
}

func (b *privateBroker) stop() {
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Kill()
	_ = b.cmd.Wait()
	b.cmd = nil
}

func (b *privateBroker) config(topics ...string) *Config {
	cfg := baseConfig(topics...)
	cfg.BrokerURL = "mqtts://127.0.0.1:" + b.port
	cfg.TLS = &TLS{CAPath: filepath.Join(b.dir, "ca.pem")}
	cfg.Auth = &Auth{Username: b.user, Password: b.pass}
	cfg.ConnectTimeoutSecs = 2
	return cfg
}

func (b *privateBroker) publisher() paho.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(b.caPEM)
	o := paho.NewClientOptions().AddBroker("ssl://127.0.0.1:" + b.port).SetClientID("rivven-tls-pub").
		SetUsername(b.user).SetPassword(b.pass).SetTLSConfig(&tls.Config{RootCAs: pool}).SetConnectRetry(false)
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.t.Fatalf("publisher connect: %v", tok.Error())
	}
	b.t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// TLS with a private CA and password auth against a real Mosquitto; then
// the broker goes away and comes back, and the source reconnects with
// backoff and goes on receiving.
func TestTLSAuthAndBrokerRestart(t *testing.T) {
	versions(t, testTLSAuthAndBrokerRestart)
}

func testTLSAuthAndBrokerRestart(t *testing.T, version string) {
	b := newPrivateBroker(t)
	base := unique(t)
	cfg := b.config(base + "/#")
	cfg.ProtocolVersion = version
	r := start(t, cfg, nil, nil)
	pub := b.publisher()
	publish(t, pub, base+"/one", 1, `{"n":1}`)
	if got := r.until(t, base+"/one"); len(got) != 1 || data(t, got[0]) != `{"n":1}` {
		t.Fatalf("got %d events", len(got))
	}

	b.stop()
	b.start()
	pub = b.publisher()
	// The source resubscribes after its reconnect; publish until it sees one.
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		publish(t, pub, base+"/again", 1, fmt.Sprintf(`{"i":%d}`, i))
		select {
		case e := <-r.events:
			if e.Stream != base+"/again" {
				t.Fatalf("unexpected event on %s", e.Stream)
			}
			return
		case err := <-r.done:
			t.Fatalf("Read returned after the broker restart: %v", err)
		case <-time.After(300 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no event after the broker restart within 20s")
		}
	}
}

// Wrong credentials and an untrusted certificate fail the health check
// with a message that never shows the password.
func TestTLSAndAuthFailures(t *testing.T) {
	versions(t, testTLSAndAuthFailures)
}

func testTLSAndAuthFailures(t *testing.T, version string) {
	b := newPrivateBroker(t)
	// Each failure is immediate; the long timeout only keeps a slow,
	// loaded machine (loading the system roots under -race) from turning
	// it into a timeout.
	config := func() *Config {
		cfg := b.config("x")
		cfg.ProtocolVersion, cfg.ConnectTimeoutSecs = version, 15
		return cfg
	}
	cfg := config()
	cfg.Auth.Password = "wrong-password-123"
	src, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = src.(*Source).Check(ctx)
	if err == nil || strings.Contains(err.Error(), "wrong-password-123") {
		t.Fatalf("check with a wrong password: %v", err)
	}
	// Mosquitto answers 0x87 (not authorized) to a wrong password.
	if version == "5" && !strings.Contains(err.Error(), "refused the connection: Not authorized (reason code 0x87)") {
		t.Errorf("v5 refusal does not give the reason: %v", err)
	}
	cfg = config()
	cfg.TLS = &TLS{} // system roots do not trust the test CA
	src, _ = New(context.Background(), cfg)
	if err := src.(*Source).Check(ctx); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("check with an untrusted certificate: %v", err)
	}
	cfg = config()
	src, _ = New(context.Background(), cfg)
	if err := src.(*Source).Check(ctx); err != nil {
		t.Fatalf("check with the right CA and password: %v", err)
	}
}
