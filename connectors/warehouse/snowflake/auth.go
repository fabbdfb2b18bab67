package snowflake

import (
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Key-pair authentication as Snowflake documents it: a JWT signed RS256
// with the user's private key, iss = ACCOUNT.USER.SHA256:<fingerprint>,
// sub = ACCOUNT.USER, iat and exp at most one hour apart, where ACCOUNT
// and USER are uppercased and the account loses a region suffix
// (xy12345.us-east-1 → XY12345) and the fingerprint is the base64 of the
// SHA-256 of the public key's DER (SubjectPublicKeyInfo) encoding.

const (
	// jwtLifetime stays under the service's one-hour maximum.
	jwtLifetime = 59 * time.Minute
	// jwtRenewBefore: a token with less than this left is replaced, so no
	// request goes out with a token that expires in flight.
	jwtRenewBefore = 5 * time.Minute
)

// loadPrivateKey reads an unencrypted PKCS#8 PEM RSA key. Other forms are
// refused with the conversion command, never with the key's text.
func loadPrivateKey(pemText []byte, from string) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(pemText)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block (expected -----BEGIN PRIVATE KEY-----)", from)
	}
	const convert = "convert with: openssl pkcs8 -topk8 -nocrypt -in KEY -out rsa_key.p8"
	switch block.Type {
	case "PRIVATE KEY":
	case "ENCRYPTED PRIVATE KEY":
		return nil, fmt.Errorf("%s: encrypted keys are not supported; %s", from, convert)
	case "RSA PRIVATE KEY":
		return nil, fmt.Errorf("%s: a PKCS#1 key (BEGIN RSA PRIVATE KEY); the key must be PKCS#8; %s", from, convert)
	default:
		return nil, fmt.Errorf("%s: a %q PEM block, not a PKCS#8 private key", from, block.Type)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: not a PKCS#8 key: %w", from, errors.Unwrap(err))
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: a %T key; Snowflake key-pair authentication takes RSA", from, k)
	}
	return rk, nil
}

// readKey loads the configured key.
func readKey(cfg *Config) (*rsa.PrivateKey, error) {
	if cfg.PrivateKey != "" {
		return loadPrivateKey([]byte(cfg.PrivateKey), "private_key")
	}
	b, err := os.ReadFile(cfg.PrivateKeyPath)
	if err != nil {
		return nil, fmt.Errorf("private_key_path: %w", err)
	}
	return loadPrivateKey(b, "private_key_path "+cfg.PrivateKeyPath)
}

// Fingerprint is "SHA256:" and the base64 SHA-256 of the public key's DER
// form, what Snowflake shows as RSA_PUBLIC_KEY_FP.
func Fingerprint(pub *rsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return "SHA256:" + base64.StdEncoding.EncodeToString(sum[:]), nil
}

// jwtAccount is the account as Snowflake's key-pair documentation builds
// it: uppercased, and for a locator with region or cloud
// (xy12345.us-east-1.aws) only the part before the first dot; a global
// account name (name-xyz.global) keeps the part before its first hyphen.
// An organization-account name (myorg-account123) stays whole.
func jwtAccount(account string) string {
	a := account
	if strings.Contains(a, ".global") {
		a, _, _ = strings.Cut(a, "-")
	} else {
		a, _, _ = strings.Cut(a, ".")
	}
	return strings.ToUpper(a)
}

// jwtSource mints and caches the key-pair JWT.
type jwtSource struct {
	key      *rsa.PrivateKey
	iss, sub string
	now      func() time.Time

	mu      sync.Mutex
	token   string
	expires time.Time
}

func newJWTSource(cfg *Config, key *rsa.PrivateKey, now func() time.Time) (*jwtSource, error) {
	fp, err := Fingerprint(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	qualified := jwtAccount(cfg.Account) + "." + strings.ToUpper(cfg.User)
	return &jwtSource{key: key, iss: qualified + "." + fp, sub: qualified, now: now}, nil
}

// Token returns a JWT valid for at least jwtRenewBefore, and its expiry.
func (j *jwtSource) Token() (string, time.Time, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	now := j.now()
	if j.token != "" && j.expires.Sub(now) > jwtRenewBefore {
		return j.token, j.expires, nil
	}
	iat := now.Truncate(time.Second)
	exp := iat.Add(jwtLifetime)
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": j.iss,
		"sub": j.sub,
		"iat": iat.Unix(),
		"exp": exp.Unix(),
	})
	s, err := t.SignedString(j.key)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign JWT: %w", err)
	}
	j.token, j.expires = s, exp
	return s, exp, nil
}

// reset forgets the cached token (after the service refused it).
func (j *jwtSource) reset() {
	j.mu.Lock()
	j.token = ""
	j.mu.Unlock()
}
