package timestamp

import (
	"strings"
	"testing"
	"time"
)

// The forms the SQL and warehouse sinks read before they shared this
// parser (sqlrow's and clickhouse's layouts, MySQL's space-separated form),
// and what none of them may accept. The time transforms' own table is in
// connectors/transform/row.
func TestParseKeepsTheSinksForms(t *testing.T) {
	berlin := time.FixedZone("CET", 3600)
	for _, tc := range []struct {
		in    string
		naive *time.Location
		want  string
		err   string
	}{
		{"2024-01-15T10:30:00.123456789Z", time.UTC, "2024-01-15T10:30:00.123456789Z", ""},
		{"2024-01-15T10:30:00.123456", time.UTC, "2024-01-15T10:30:00.123456Z", ""},
		{"2024-01-15 10:30:00.123456", time.UTC, "2024-01-15T10:30:00.123456Z", ""},
		{"2024-01-15 10:30:00.5+02:00", time.UTC, "2024-01-15T08:30:00.5Z", ""},
		{"2024-01-15 10:30:00+02", time.UTC, "2024-01-15T08:30:00Z", ""},
		{"2024-01-15 10:30:00", berlin, "2024-01-15T09:30:00Z", ""},
		{"2024-01-15", time.UTC, "2024-01-15T00:00:00Z", ""},
		{"2024-02-29", time.UTC, "2024-02-29T00:00:00Z", ""},
		{"2023-02-29", time.UTC, "", "no such date"},
		{"2024-01-15T10:30:00 +02:00", time.UTC, "", "unexpected"},
		{"10000-01-01", time.UTC, "", "no YYYY-MM-DD date"},
		{"not a time", time.UTC, "", "not a timestamp"},
	} {
		got, err := Parse(tc.in, tc.naive)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Parse(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || !got.Equal(mustRFC3339(t, tc.want)) {
			t.Errorf("Parse(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func mustRFC3339(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
