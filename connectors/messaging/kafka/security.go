// Package kafka holds the kafka-source and kafka-sink connectors, built on
// franz-go (kgo). The source consumes a topic in a consumer group and
// commits offsets only after a batch was durably published downstream; the
// sink produces events, optionally idempotently or in one transaction per
// batch.
package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/rivven/rivven-connect/shared/spec"
)

// Security is the security block shared by source and sink.
type Security struct {
	Protocol  string `yaml:"protocol" default:"plaintext" enum:"plaintext,ssl,sasl_plaintext,sasl_ssl" doc:"Transport and authentication: plaintext, ssl (TLS), sasl_plaintext (SASL without TLS) or sasl_ssl (SASL over TLS)."`
	Mechanism string `yaml:"mechanism" enum:"PLAIN,SCRAM_SHA_256,SCRAM_SHA_512" doc:"SASL mechanism for sasl_plaintext and sasl_ssl; defaults to PLAIN."`
	Username  string `yaml:"username" doc:"SASL username."`
	Password  string `yaml:"password" secret:"true" doc:"SASL password."`
	CAPath    string `yaml:"ca_path" doc:"PEM file of CA certificates to trust instead of the system roots (ssl, sasl_ssl)."`
	CertPath  string `yaml:"cert_path" doc:"PEM client certificate (with key_path) for mutual TLS (ssl, sasl_ssl)."`
	KeyPath   string `yaml:"key_path" doc:"PEM private key of cert_path."`
}

func (s *Security) protocol() string {
	if s == nil || s.Protocol == "" {
		return "plaintext"
	}
	return s.Protocol
}

func (s *Security) validate(prefix string) []spec.Problem {
	if s == nil {
		return nil
	}
	var ps []spec.Problem
	p := func(path, msg string) { ps = append(ps, spec.Problem{Path: prefix + path, Message: msg}) }
	proto := s.protocol()
	isSASL := strings.HasPrefix(proto, "sasl_")
	isTLS := proto == "ssl" || proto == "sasl_ssl"
	switch proto {
	case "plaintext", "ssl", "sasl_plaintext", "sasl_ssl":
	default:
		p("protocol", fmt.Sprintf("unknown protocol %q (allowed: plaintext, ssl, sasl_plaintext, sasl_ssl)", proto))
	}
	switch s.Mechanism {
	case "", "PLAIN", "SCRAM_SHA_256", "SCRAM_SHA_512":
	default:
		p("mechanism", fmt.Sprintf("unknown mechanism %q (allowed: PLAIN, SCRAM_SHA_256, SCRAM_SHA_512)", s.Mechanism))
	}
	if isSASL && s.Username == "" {
		p("username", "required with protocol "+proto)
	}
	if !isSASL && (s.Mechanism != "" || s.Username != "" || s.Password != "") {
		p("protocol", "mechanism, username and password need protocol sasl_plaintext or sasl_ssl")
	}
	if !isTLS && (s.CAPath != "" || s.CertPath != "" || s.KeyPath != "") {
		p("protocol", "ca_path, cert_path and key_path need protocol ssl or sasl_ssl")
	}
	if (s.CertPath == "") != (s.KeyPath == "") {
		p("cert_path", "cert_path and key_path go together")
	}
	return ps
}

func validateBrokers(brokers []string) []spec.Problem {
	if len(brokers) == 0 {
		return []spec.Problem{{Path: "brokers", Message: "at least one broker address (host:port) is required"}}
	}
	var ps []spec.Problem
	for i, b := range brokers {
		if strings.TrimSpace(b) == "" || strings.Contains(b, "://") {
			ps = append(ps, spec.Problem{Path: spec.Index("brokers", i), Message: fmt.Sprintf("%q is not a host:port address", b)})
		}
	}
	return ps
}

// clientOpts are the kgo options for brokers and security.
func clientOpts(brokers []string, s *Security) ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(brokers...)}
	proto := s.protocol()
	if proto == "ssl" || proto == "sasl_ssl" {
		t := &tls.Config{MinVersion: tls.VersionTLS12}
		if s.CAPath != "" {
			pem, err := os.ReadFile(s.CAPath)
			if err != nil {
				return nil, fmt.Errorf("kafka: security.ca_path: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("kafka: security.ca_path: no PEM certificates in %s", s.CAPath)
			}
			t.RootCAs = pool
		}
		if s.CertPath != "" {
			cert, err := tls.LoadX509KeyPair(s.CertPath, s.KeyPath)
			if err != nil {
				return nil, fmt.Errorf("kafka: security.cert_path/key_path: %w", err)
			}
			t.Certificates = []tls.Certificate{cert}
		}
		opts = append(opts, kgo.DialTLSConfig(t))
	}
	if strings.HasPrefix(proto, "sasl_") {
		switch s.Mechanism {
		case "", "PLAIN":
			opts = append(opts, kgo.SASL(plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism()))
		case "SCRAM_SHA_256":
			opts = append(opts, kgo.SASL(scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism()))
		case "SCRAM_SHA_512":
			opts = append(opts, kgo.SASL(scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism()))
		}
	}
	return opts, nil
}
