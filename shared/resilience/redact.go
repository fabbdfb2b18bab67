package resilience

import (
	"regexp"
	"sort"
	"strings"
)

// Redactor removes secrets from text shown to operators (health output,
// last-error fields, logs). Errors from drivers routinely quote a DSN or a
// URL with its password, and a health endpoint is often less protected
// than the logs, so every such string passes through it.
type Redactor struct {
	secrets []string // longest first, so a secret containing another goes whole
}

// minSecret is the shortest value treated as a secret: shorter ones
// ("1", "on") would blank out unrelated text.
const minSecret = 4

// NewRedactor returns a redactor for these secret values (configured
// passwords, tokens, keys) on top of the patterns it always applies.
func NewRedactor(secrets ...string) *Redactor {
	r := &Redactor{}
	seen := map[string]bool{}
	for _, s := range secrets {
		if len(s) >= minSecret && !seen[s] {
			seen[s] = true
			r.secrets = append(r.secrets, s)
		}
	}
	sort.Slice(r.secrets, func(i, j int) bool { return len(r.secrets[i]) > len(r.secrets[j]) })
	return r
}

var (
	// scheme://user:password@host — keep the user, hide the password.
	urlPassword = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*):[^@\s]*@`)
	// password=..., token: ..., api_key=... in DSNs and messages.
	keyValue = regexp.MustCompile(`(?i)\b((?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|authorization)["']?\s*[=:]\s*["']?)([^\s"'&;,]+)`)
)

// Redact returns s with every known secret and every password-looking
// value replaced by "****".
func (r *Redactor) Redact(s string) string {
	if s == "" {
		return s
	}
	if r != nil {
		for _, sec := range r.secrets {
			s = strings.ReplaceAll(s, sec, "****")
		}
	}
	s = urlPassword.ReplaceAllString(s, "$1:****@")
	return keyValue.ReplaceAllString(s, "${1}****")
}
