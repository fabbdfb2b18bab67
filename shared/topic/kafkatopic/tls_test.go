package kafkatopic

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/topic"
)

// pki is a throwaway CA with a server and a client certificate.
type pki struct {
	caPEM                 []byte
	server                tls.Certificate
	clientCert, clientKey []byte
	pool                  *x509.CertPool
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, usage x509.ExtKeyUsage) ([]byte, []byte) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "localhost"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kd, _ := x509.MarshalECPrivateKey(key)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})
	}
	p := &pki{caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	sc, sk := leaf(2, x509.ExtKeyUsageServerAuth)
	if p.server, err = tls.X509KeyPair(sc, sk); err != nil {
		t.Fatal(err)
	}
	p.clientCert, p.clientKey = leaf(3, x509.ExtKeyUsageClientAuth)
	return p
}

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestTLSWithClientCertificate: broker.tls (CA, client certificate) against
// a cluster that requires one.
func TestTLSWithClientCertificate(t *testing.T) {
	p := newPKI(t)
	addrs := cluster(t, kfake.TLS(&tls.Config{
		Certificates: []tls.Certificate{p.server}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: p.pool, MinVersion: tls.VersionTLS12,
	}))
	cfg := broker(addrs...)
	cfg.ConnectionTimeoutMs, cfg.RequestTimeoutMs = 1000, 2000
	cfg.TLS = config.TLS{Enabled: true, CAPath: writeFile(t, "ca.pem", p.caPEM),
		CertPath: writeFile(t, "client.pem", p.clientCert), KeyPath: writeFile(t, "client.key", p.clientKey)}
	ctx := ctxT(t)
	k := connect(t, cfg)
	k.AutoCreate = true
	if err := k.Produce(ctx, "secure", []topic.Message{{Value: []byte("over TLS")}}); err != nil {
		t.Fatal(err)
	}
	if ms := readAll(t, k, "secure")[0]; len(ms) != 1 || string(ms[0].Value) != "over TLS" {
		t.Fatalf("read back %+v", ms)
	}

	// Without the client certificate the cluster refuses the connection.
	noCert := *cfg
	noCert.TLS.CertPath, noCert.TLS.KeyPath = "", ""
	if k, err := New(ctx, &noCert); err == nil {
		k.Close()
		t.Fatal("connected without the required client certificate")
	}
	// Without TLS the broker does not answer a plain client.
	plain := *cfg
	plain.TLS = config.TLS{}
	if k, err := New(ctx, &plain); err == nil {
		k.Close()
		t.Fatal("connected in plaintext to a TLS listener")
	}
}

// TestTLSConfigErrorsKeepSecretsOut: a broken key file is reported by its
// path, never by its content.
func TestTLSConfigErrorsKeepSecretsOut(t *testing.T) {
	p := newPKI(t)
	const secret = "hunter2-do-not-print"
	badKey := writeFile(t, "bad.key", []byte("-----BEGIN EC PRIVATE KEY-----\n"+secret+"\n-----END EC PRIVATE KEY-----\n"))
	for _, c := range []struct {
		tls  config.TLS
		want string
	}{
		{config.TLS{Enabled: true, CertPath: writeFile(t, "c.pem", p.clientCert), KeyPath: badKey}, "broker.tls.cert_path/key_path"},
		{config.TLS{Enabled: true, CAPath: badKey}, "broker.tls.ca_path"},
		{config.TLS{Enabled: true, CAPath: filepath.Join(t.TempDir(), "missing.pem")}, "broker.tls.ca_path"},
		{config.TLS{Enabled: true, CertPath: "only-cert.pem"}, "cert_path and key_path"},
	} {
		cfg := broker("127.0.0.1:1")
		cfg.TLS = c.tls
		_, err := New(ctxT(t), cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), secret) {
			t.Errorf("TLS %+v: %v (want it to name %q and not quote the file)", c.tls, err, c.want)
		}
	}
}
