// Package cdc holds what the change-data-capture sources (postgres-cdc,
// mysql-cdc) share: the snapshot modes and the tls block, whose modes mean
// what libpq's sslmode values mean.
package cdc

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/rivven/rivven-connect/shared/spec"
)

// SnapshotModes are the values of snapshot.mode every CDC source has; a
// source may add its own (postgres-cdc: recovery).
var SnapshotModes = []string{"initial", "always", "never", "when_needed", "initial_only", "no_data"}

// TLSModes are the values of tls.mode.
var TLSModes = []string{"disable", "prefer", "require", "verify-ca", "verify-full"}

// TLS is the tls block of a CDC source.
type TLS struct {
	Mode       string `yaml:"mode" default:"prefer" enum:"disable,prefer,require,verify-ca,verify-full" doc:"disable: plain TCP; prefer: TLS when the server offers it, without certificate checks; require: TLS without certificate checks; verify-ca: TLS with the certificate chain checked against ca_path; verify-full: verify-ca plus the host name."`
	CAPath     string `yaml:"ca_path" doc:"PEM file of CA certificates for verify-ca / verify-full (system roots when empty)."`
	CertPath   string `yaml:"cert_path" doc:"PEM client certificate for certificate authentication (with key_path)."`
	KeyPath    string `yaml:"key_path" doc:"PEM private key of cert_path."`
	ServerName string `yaml:"server_name" doc:"Host name verify-full checks; defaults to host."`
}

// Validate checks the block; paths are relative to the source's config.
func (t *TLS) Validate() []spec.Problem {
	var ps []spec.Problem
	if t.Mode != "" && !slices.Contains(TLSModes, t.Mode) {
		ps = append(ps, spec.Problem{Path: "tls.mode", Message: fmt.Sprintf("unknown mode %q (allowed: %s)", t.Mode, strings.Join(TLSModes, ", "))})
	}
	if (t.CertPath == "") != (t.KeyPath == "") {
		ps = append(ps, spec.Problem{Path: "tls", Message: "cert_path and key_path go together"})
	}
	return ps
}

// ValidateSnapshotMode checks snapshot.mode against SnapshotModes plus the
// source's own extra modes.
func ValidateSnapshotMode(mode string, extra ...string) []spec.Problem {
	allowed := append(slices.Clip(SnapshotModes), extra...)
	if slices.Contains(allowed, mode) {
		return nil
	}
	return []spec.Problem{{Path: "snapshot.mode", Message: fmt.Sprintf("unknown mode %q (allowed: %s)", mode, strings.Join(allowed, ", "))}}
}

// Client returns the client TLS config for host (nil for disable) and
// whether the mode is prefer, under which a server without TLS is reached
// in plain text. An empty mode is prefer.
func (t *TLS) Client(host string) (cfg *tls.Config, prefer bool, err error) {
	mode := t.Mode
	if mode == "" {
		mode = "prefer"
	}
	if mode == "disable" {
		return nil, false, nil
	}
	// For an IP address host, crypto/tls checks the certificate's IP SANs.
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	if t.ServerName != "" {
		tc.ServerName = t.ServerName
	}
	if t.CAPath != "" {
		pem, err := os.ReadFile(t.CAPath)
		if err != nil {
			return nil, false, fmt.Errorf("tls.ca_path: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, false, fmt.Errorf("tls.ca_path: no PEM certificates in %s", t.CAPath)
		}
		tc.RootCAs = pool
	}
	if t.CertPath != "" {
		cert, err := tls.LoadX509KeyPair(t.CertPath, t.KeyPath)
		if err != nil {
			return nil, false, fmt.Errorf("tls.cert_path/key_path: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	switch mode {
	case "prefer", "require":
		// Encryption without authenticating the server, as libpq's and
		// MySQL's modes of the same names.
		tc.InsecureSkipVerify = true
	case "verify-ca":
		// The chain is checked but not the host name, which crypto/tls
		// allows only through a custom verification.
		roots := tc.RootCAs
		tc.InsecureSkipVerify = true
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("server sent no certificate")
			}
			opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool()}
			for _, ic := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(ic)
			}
			_, err := cs.PeerCertificates[0].Verify(opts)
			return err
		}
	}
	return tc, mode == "prefer", nil
}

// ValidateServer checks the connection keys both sources have.
func ValidateServer(host string, port int, database, user string) []spec.Problem {
	var ps []spec.Problem
	if strings.TrimSpace(host) == "" {
		ps = append(ps, spec.Problem{Path: "host", Message: "must not be empty"})
	}
	if port < 1 || port > 65535 {
		ps = append(ps, spec.Problem{Path: "port", Message: "must be between 1 and 65535"})
	}
	if database == "" {
		ps = append(ps, spec.Problem{Path: "database", Message: "must not be empty"})
	}
	if user == "" {
		ps = append(ps, spec.Problem{Path: "user", Message: "must not be empty"})
	}
	return ps
}
