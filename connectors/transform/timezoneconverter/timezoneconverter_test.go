package timezoneconverter

import (
	"strings"
	"testing"
	"time"

	"github.com/rivven/rivven-connect/connectors/transform/transformtest"
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
)

const path = "sources.x.transforms[0].config"

func newT(t testing.TB, yaml string) connector.Transform {
	t.Helper()
	return transformtest.Build(t, yaml, New)
}

func ev(typ events.Type, data string) *events.Event {
	return events.New(typ, "orders", events.RawPayload([]byte(data)))
}

func run(t *testing.T, tr connector.Transform, e *events.Event) (string, error) {
	t.Helper()
	return transformtest.Run(t, tr, e)
}

func TestRegistered(t *testing.T) {
	for _, name := range []string{"TimezoneConverter", "timezone_converter", "timezone-converter"} {
		if e, ok := catalog.Lookup(catalog.Transform, name); !ok || e.Name != "TimezoneConverter" || e.Category != catalog.Transforms {
			t.Errorf("%s: %+v %v", name, e, ok)
		}
	}
}

func TestApply(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		typ          events.Type
		data, want   string
		err          string
	}{
		{"UTC to New York, winter", "fields: [ts]\nto: America/New_York", events.Insert, `{"ts":"2024-01-15T10:30:00Z"}`, `{"ts":"2024-01-15T05:30:00-05:00"}`, ""},
		{"UTC to New York, summer", "fields: [ts]\nto: America/New_York", events.Insert, `{"ts":"2024-07-15T10:30:00Z"}`, `{"ts":"2024-07-15T06:30:00-04:00"}`, ""},
		{"offset input ignores from", "fields: [ts]\nfrom: Asia/Tokyo\nto: Europe/Berlin", events.Insert, `{"ts":"2024-01-15T10:30:00+01:00"}`, `{"ts":"2024-01-15T10:30:00+01:00"}`, ""},
		{"naive input is in from", "fields: [ts]\nfrom: Europe/Berlin", events.Insert, `{"ts":"2024-07-01 12:00:00"}`, `{"ts":"2024-07-01T10:00:00Z"}`, ""},
		{"date input is midnight in from", "fields: [ts]\nfrom: Asia/Tokyo", events.Insert, `{"ts":"2024-01-15"}`, `{"ts":"2024-01-14T15:00:00Z"}`, ""},
		{"epoch millis to half-hour zone", "fields: [ts]\nto: Asia/Kolkata", events.Insert, `{"ts":1705314600123}`, `{"ts":"2024-01-15T16:00:00.123+05:30"}`, ""},
		{"epoch seconds are instants", "fields: [ts]\nfrom: America/New_York", events.Insert, `{"ts":0}`, `{"ts":"1970-01-01T00:00:00Z"}`, ""},
		{"date_only in the target zone", "fields: [ts]\nto: America/Los_Angeles\ndate_only: true", events.Insert, `{"ts":"2024-01-15T03:00:00Z"}`, `{"ts":"2024-01-14"}`, ""},
		{"strftime format", "fields: [ts]\nto: America/New_York\nformat: '%Y-%m-%d %H:%M:%S %Z'", events.Insert, `{"ts":"2024-01-15T10:30:00Z"}`, `{"ts":"2024-01-15 05:30:00 EST"}`, ""},
		{"literal text is literal", "fields: [ts]\nformat: 'Jan 2006 PM: %d.%m.%Y'", events.Insert, `{"ts":"2024-01-15T10:30:00Z"}`, `{"ts":"Jan 2006 PM: 15.01.2024"}`, ""},
		{"ambiguous wall clock is the earlier instant", "fields: [ts]\nfrom: America/New_York", events.Insert, `{"ts":"2024-11-03 01:30:00"}`, `{"ts":"2024-11-03T05:30:00Z"}`, ""},
		{"skipped wall clock", "fields: [ts]\nfrom: America/New_York", events.Insert, `{"ts":"2024-03-10 02:30:00"}`, "", "does not exist in America/New_York"},
		{"update converts both images", "fields: [ts]\nto: Europe/Paris", events.Update, `{"before":{"ts":"2024-01-15T10:30:00Z"},"after":{"ts":"2024-07-15T10:30:00Z"}}`, `{"after":{"ts":"2024-07-15T12:30:00+02:00"},"before":{"ts":"2024-01-15T11:30:00+01:00"}}`, ""},
		{"delete", "fields: [ts]\nto: Europe/Paris", events.Delete, `{"ts":"2024-01-15T10:30:00Z"}`, `{"ts":"2024-01-15T11:30:00+01:00"}`, ""},
		{"snapshot read", "fields: [ts]\nto: Europe/Paris", events.SnapshotRead, `{"ts":"2024-01-15T10:30:00Z"}`, `{"ts":"2024-01-15T11:30:00+01:00"}`, ""},
		{"nested, missing and null", "fields: [a.ts, b, c]\nto: Europe/Paris", events.Insert, `{"a":{"ts":"2024-01-15T10:30:00Z"},"c":null}`, `{"a":{"ts":"2024-01-15T11:30:00+01:00"},"c":null}`, ""},
		{"unparsable", "fields: [ts]", events.Insert, `{"ts":"noon"}`, "", `field "ts": "noon" is not a timestamp`},
		{"truncate passes", "fields: [ts]", events.Truncate, `null`, `null`, ""},
		{"schema passes", "fields: [ts]", events.Schema, `{"ts":1}`, `{"ts":1}`, ""},
		{"state passes", "fields: [ts]", events.State, `{"ts":1}`, `{"ts":1}`, ""},
		{"log passes", "fields: [ts]", events.Log, `{"ts":1}`, `{"ts":1}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := run(t, newT(t, tc.config), ev(tc.typ, tc.data))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %s %v, want %s", got, err, tc.want)
			}
		})
	}
}

func TestFailureLeavesEventUnchanged(t *testing.T) {
	e := ev(events.Update, `{"before":{"ts":"bad"},"after":{"ts":0}}`)
	if _, err := run(t, newT(t, "fields: [ts]\nto: Asia/Tokyo"), e); err == nil {
		t.Fatal("no error")
	}
	if b, _ := e.Data.JSON(); e.Data.Changed() || string(b) != `{"before":{"ts":"bad"},"after":{"ts":0}}` {
		t.Errorf("data %s", b)
	}
}

func TestStrftime(t *testing.T) {
	ts := time.Date(2024, 3, 5, 14, 7, 9, 26_490_000, time.FixedZone("XYZ", 9*3600+30*60))
	for f, want := range map[string]string{
		"%Y %C %y %m %b %h %B %d %e %j": "2024 20 24 03 Mar Mar March 05  5 065",
		"%a %A %u %w":                   "Tue Tuesday 2 2",
		"%H %k %I %l %M %S %p %P":       "14 14 02  2 07 09 PM pm",
		"%f|%3f|%6f|%9f":                "026490000|026|026490|026490000",
		"%.f|%.3f|%.6f|%.9f":            ".026490|.026|.026490|.026490000",
		"%z %:z %Z":                     "+0930 +09:30 XYZ",
		"%s":                            "1709613429",
		"%F %T %R %D":                   "2024-03-05 14:07:09 14:07 03/05/24",
		"%+":                            "2024-03-05T14:07:09.026490+09:30",
		"100%% %n%t.":                   "100% \n\t.",
		"%Y%m%d":                        "20240305",
		"[%H]":                          "[14]",
	} {
		l, err := compile(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if got := string(l.append(nil, ts)); got != want {
			t.Errorf("%s: %q, want %q", f, got, want)
		}
	}
	whole := time.Date(2024, 3, 5, 0, 0, 0, 0, time.UTC)
	if l, _ := compile("%T%.f"); string(l.append(nil, whole)) != "00:00:00" {
		t.Errorf("%%.f of a whole second: %q", l.append(nil, whole))
	}
	for f, msg := range map[string]string{"%Q": `unknown directive "%Q"`, "abc %": `unknown directive "%"`, "%Y-%": `"%"`, "2006-01-02": "no %-directive", "": "empty"} {
		if _, err := compile(f); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: %v, want %q", f, err, msg)
		}
	}
}

func TestConfigProblems(t *testing.T) {
	for _, tc := range []struct{ yaml, path, msg string }{
		{"to: UTC", path + ".fields", "required"},
		{"fields: []", path + ".fields", "at least one"},
		{"fields: ['.a']", path + ".fields[0]", "empty segment"},
		{"fields: [a]\nfrom: Mars/Olympus", path + ".from", `unknown time zone "Mars/Olympus"`},
		{"fields: [a]\nto: EST5EDTX", path + ".to", "unknown time zone"},
		{"fields: [a]\nto: Local", path + ".to", "depends on the machine"},
		{"fields: [a]\nto: ''", path + ".to", "must not be empty"},
		{"fields: [a]\nformat: '%Y-%Q'", path + ".format", `unknown directive "%Q"`},
		{"fields: [a]\nformat: 'YYYY-MM-DD'", path + ".format", "no %-directive"},
		{"fields: [a]\nformat: '%F'\ndate_only: true", path + ".date_only", "not both"},
		{"fields: [a]\ndate_only: yes please", path + ".date_only", "true or false"},
		{"fields: [a]\nzone: UTC", path + ".zone", "unknown key"},
	} {
		_, ps := spec.DecodeString[Config](tc.yaml, path)
		found := false
		for _, p := range ps {
			found = found || p.Path == tc.path && strings.Contains(p.Message, tc.msg)
		}
		if !found {
			t.Errorf("%q: problems %v, want %s: %s", tc.yaml, ps, tc.path, tc.msg)
		}
	}
	cfg, ps := spec.DecodeString[Config]("fields: [a]", path)
	if len(ps) > 0 || cfg.From != "UTC" || cfg.To != "UTC" || cfg.DateOnly || cfg.Format != "" {
		t.Errorf("defaults: %+v %v", cfg, ps)
	}
}

func TestRoundTrip(t *testing.T) {
	e := ev(events.Update, `{"before":{"ts":"2024-01-15 10:30:00.5"},"after":{"ts":1705314600000}}`)
	if _, err := run(t, newT(t, "fields: [ts]\nfrom: Europe/Berlin\nto: America/Sao_Paulo"), e); err != nil {
		t.Fatal(err)
	}
	b, err := events.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	back, err := events.Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := back.Data.JSON(); string(d) != `{"after":{"ts":"2024-01-15T07:30:00-03:00"},"before":{"ts":"2024-01-15T06:30:00.500-03:00"}}` {
		t.Errorf("round trip: %s", d)
	}
}

func BenchmarkTimezoneConverter(b *testing.B) {
	const raw = `{"order_id":1,"customer_id":7592,"product":"Ultra Kit","total":41.16,"created_at":"2025-01-01 00:00:00.100","updated_at":1735689600100}`
	for _, c := range []struct{ name, config string }{
		{"rfc3339", "fields: [created_at, updated_at]\nfrom: Europe/Berlin\nto: America/New_York"},
		{"strftime", "fields: [created_at, updated_at]\nfrom: Europe/Berlin\nto: America/New_York\nformat: '%Y-%m-%d %H:%M:%S %Z'"},
	} {
		tr := newT(b, c.config)
		b.Run(c.name+"/apply", func(b *testing.B) { transformtest.Bench(b, tr, events.Insert, raw, false) })
		b.Run(c.name+"/apply+marshal", func(b *testing.B) { transformtest.Bench(b, tr, events.Insert, raw, true) })
	}
}
