package rdbc

import (
	"strings"
	"testing"

	"github.com/rivven/rivven-connect/shared/spec"
)

func TestConfigProblems(t *testing.T) {
	cases := []struct {
		name, yaml, want string
		source           bool
	}{
		{"scheme", "url: sqlite:///x.db\n", "url|unsupported scheme \"sqlite\"", false},
		{"mode", "url: postgres://u@h/db\nmode: merge\n", "mode", false},
		{"no tables", "url: postgres://u@h/db\n", "tables|set tables or query", true},
		{"both", "url: postgres://u@h/db\ntables: [a]\nquery: SELECT 1\n", "query|set tables or query, not both", true},
		{"inc column", "url: mysql://u@h/db\ntables: [a]\nmode: incrementing\n", "incrementing_column|required with mode incrementing", true},
		{"ts column", "url: mysql://u@h/db\ntables: [a]\nmode: timestamp+incrementing\nincrementing_column: id\n", "timestamp_column|required", true},
		{"stray column", "url: mysql://u@h/db\ntables: [a]\ntimestamp_column: t\n", "timestamp_column|only used with modes", true},
		{"table", "url: mysql://u@h/db\ntables: [a.b.c]\n", "tables[0]", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var ps []spec.Problem
			if c.source {
				_, ps = spec.DecodeString[SourceConfig](c.yaml, "config")
			} else {
				_, ps = spec.DecodeString[SinkConfig](c.yaml, "config")
			}
			path, msg, _ := strings.Cut(c.want, "|")
			got := spec.Problems(ps).Error()
			if !strings.Contains(got, "config."+path+" ") || !strings.Contains(got, msg) {
				t.Errorf("problems %v, want %q", spec.Problems(ps), c.want)
			}
		})
	}
	// The password never shows in a problem.
	_, ps := spec.DecodeString[SinkConfig]("url: \"postgres://u:s3cret@h:port/db\"\n", "config")
	for _, p := range ps {
		if strings.Contains(p.Message, "s3cret") {
			t.Errorf("problem shows the password: %v", p)
		}
	}
}

func TestTargetTypes(t *testing.T) {
	for _, c := range []struct {
		src, pg, my string
	}{
		{"integer", "integer", "INT"},
		{"int(10) unsigned", "bigint", "INT UNSIGNED"},
		{"bigint unsigned", "numeric(20)", "BIGINT UNSIGNED"},
		{"numeric(20,6)", "numeric(20,6)", "DECIMAL(20,6)"},
		{"numeric", "numeric", "DECIMAL(65,30)"},
		{"character varying(50)", "varchar(50)", "VARCHAR(50)"},
		{"timestamp(3) without time zone", "timestamp(3) without time zone", "DATETIME(3)"},
		{"timestamp with time zone", "timestamp(6) with time zone", "DATETIME(6)"},
		{"timestamp(6)", "timestamp(6) with time zone", "DATETIME(6)"},
		{"datetime(6)", "timestamp(6) without time zone", "DATETIME(6)"},
		{"tinyint(1)", "smallint", "TINYINT(1)"},
		{"jsonb", "jsonb", "JSON"},
		{"integer[]", "integer[]", "JSON"},
		{"_int4", "int4[]", "JSON"},
		{"bytea", "bytea", "LONGBLOB"},
		{"longblob", "bytea", "LONGBLOB"},
		{"uuid", "uuid", "UUID"},
		{"point", "text", "LONGTEXT"},
	} {
		if got := targetType(postgres, c.src, false); got != c.pg {
			t.Errorf("%s -> postgres %s, want %s", c.src, got, c.pg)
		}
		if got := targetType(mysql, c.src, false); got != c.my {
			t.Errorf("%s -> mysql %s, want %s", c.src, got, c.my)
		}
	}
	if got := targetType(mysql, "text", true); got != "VARCHAR(255)" {
		t.Errorf("text key column -> %s", got)
	}
}
