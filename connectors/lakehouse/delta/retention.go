package deltalake

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// txnRetentionKey is the table property that expires txn actions
// (PROTOCOL.md, "Transaction Identifiers"; Delta's
// setTransactionRetentionDuration): a txn whose lastUpdated is older than
// the duration is no longer part of the table state, nor of checkpoints.
const txnRetentionKey = "delta.setTransactionRetentionDuration"

// parseInterval reads a duration as Delta's table properties spell them,
// like "interval 7 days" or "interval 1 day 12 hours" (the "interval" is
// optional; units week, day, hour, minute, second, singular or plural).
func parseInterval(s string) (time.Duration, error) {
	f := strings.Fields(strings.ToLower(s))
	if len(f) > 0 && f[0] == "interval" {
		f = f[1:]
	}
	if len(f) == 0 || len(f)%2 != 0 {
		return 0, fmt.Errorf("%q is not an interval like \"interval 7 days\"", s)
	}
	var d time.Duration
	for i := 0; i < len(f); i += 2 {
		n, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%q is not an interval like \"interval 7 days\": %q is not a count", s, f[i])
		}
		var unit time.Duration
		switch strings.TrimSuffix(f[i+1], "s") {
		case "week":
			unit = 7 * 24 * time.Hour
		case "day":
			unit = 24 * time.Hour
		case "hour":
			unit = time.Hour
		case "minute":
			unit = time.Minute
		case "second":
			unit = time.Second
		default:
			return 0, fmt.Errorf("%q is not an interval like \"interval 7 days\": unknown unit %q", s, f[i+1])
		}
		d += time.Duration(n) * unit
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q is not a positive interval", s)
	}
	return d, nil
}

// expireTxns drops the txns the table's retention has expired at now.
// Txns without lastUpdated never expire, as in Delta.
func (s *snapshot) expireTxns(now time.Time) error {
	if s.meta == nil {
		return nil
	}
	v, ok := s.meta.Configuration[txnRetentionKey]
	if !ok {
		return nil
	}
	d, err := parseInterval(v)
	if err != nil {
		return fmt.Errorf("table property %s: %w", txnRetentionKey, err)
	}
	cutoff := now.Add(-d).UnixMilli()
	for id, t := range s.txns {
		if t.LastUpdated != nil && *t.LastUpdated < cutoff {
			delete(s.txns, id)
		}
	}
	return nil
}
