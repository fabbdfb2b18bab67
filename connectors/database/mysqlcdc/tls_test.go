package mysqlcdc

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testPKI makes a CA and a server certificate for 127.0.0.1 / "db.test".
func testPKI(t *testing.T) (caPath string, server tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTpl, caTpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "db.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"db.test"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caPath = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return caPath, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// fakeTLSServer speaks the server side of the MySQL handshake up to the OK
// packet, upgrading to TLS when the client asks; it reports the user the
// client sent over the encrypted channel.
func fakeTLSServer(t *testing.T, cert tls.Certificate) (addr string, users <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	ch := make(chan string, 8)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func(nc net.Conn) {
				defer nc.Close()
				c := &conn{nc: nc}
				c.br = newBufReader(nc)
				caps := uint32(capLongPassword | capProtocol41 | capSecureConnection | capPluginAuth | capPluginAuthLenenc | capSSL | capTransactions)
				g := []byte{10}
				g = append(g, "5.7.99-fake\x00"...)
				g = binary.LittleEndian.AppendUint32(g, 7)
				g = append(g, "abcdefgh"...)
				g = append(g, 0)
				g = binary.LittleEndian.AppendUint16(g, uint16(caps))
				g = append(g, 45, 2, 0)
				g = binary.LittleEndian.AppendUint16(g, uint16(caps>>16))
				g = append(g, 21)
				g = append(g, make([]byte, 10)...)
				g = append(g, "ijklmnopqrst\x00"...)
				g = append(g, "mysql_native_password\x00"...)
				c.seq = 0
				if c.writePacket(g) != nil {
					return
				}
				req, err := c.readPacket()
				if err != nil || len(req) < 4 || binary.LittleEndian.Uint32(req)&capSSL == 0 {
					ch <- "no-tls"
					return
				}
				// The ClientHello may already sit in the packet reader's buffer.
				tc := tls.Server(bufConn{nc, c.br}, &tls.Config{Certificates: []tls.Certificate{cert}})
				if tc.Handshake() != nil {
					ch <- "handshake-failed"
					return
				}
				c.nc, c.br = tc, newBufReader(tc)
				resp, err := c.readPacket()
				if err != nil || len(resp) < 33 {
					return
				}
				user := string(resp[32 : 32+strings.IndexByte(string(resp[32:]), 0)])
				_ = c.writePacket([]byte{0, 0, 0, 2, 0, 0, 0})
				ch <- user
			}(nc)
		}
	}()
	return ln.Addr().String(), ch
}

func newBufReader(nc net.Conn) *bufio.Reader { return bufio.NewReader(nc) }

// bufConn reads through a bufio.Reader that may hold read-ahead bytes.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (b bufConn) Read(p []byte) (int, error) { return b.r.Read(p) }

func atoiT(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestTLSModes(t *testing.T) {
	caPath, cert := testPKI(t)
	addr, users := fakeTLSServer(t, cert)
	host, port, _ := net.SplitHostPort(addr)
	try := func(tlsCfg *TLS) error {
		cfg := testConfig()
		cfg.Host = host
		cfg.Port = atoiT(t, port)
		cfg.TLS = tlsCfg
		tc, required, err := cfg.tlsConfig()
		if err != nil {
			return err
		}
		c, err := dial(context.Background(), connParams{Addr: addr, User: "tls_user", Password: "pw", TLS: tc, TLSRequired: required, Timeout: 5 * time.Second})
		if err != nil {
			return err
		}
		defer c.Close()
		if _, ok := c.nc.(*tls.Conn); !ok {
			t.Error("connection is not encrypted")
		}
		if u := <-users; u != "tls_user" {
			t.Errorf("server saw user %q", u)
		}
		return nil
	}
	for _, tc := range []struct {
		name string
		cfg  *TLS
		ok   bool
	}{
		{"verify-full", &TLS{Mode: "verify-full", CAPath: caPath}, true},
		{"verify-full wrong name", &TLS{Mode: "verify-full", CAPath: caPath, ServerName: "other.test"}, false},
		{"verify-full system roots", &TLS{Mode: "verify-full"}, false},
		{"verify-ca ignores name", &TLS{Mode: "verify-ca", CAPath: caPath, ServerName: "other.test"}, true},
		{"verify-ca system roots", &TLS{Mode: "verify-ca"}, false},
		{"require", &TLS{Mode: "require"}, true},
		{"prefer", &TLS{Mode: "prefer"}, true},
	} {
		err := try(tc.cfg)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil {
			<-users // the server's view of the failed handshake
		}
	}
}
