package postgrescdc

import (
	"context"
	"strings"
	"testing"

	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/pipeline"
	"github.com/rivven/rivven-connect/shared/spec"
)

const baseYAML = `host: db.example.com
database: app
user: cdc
password: hunter2-secret
slot_name: rivven_slot
publication_name: rivven_pub
`

func TestRegistered(t *testing.T) {
	e, ok := catalog.Default.Lookup(catalog.Source, "postgres-cdc")
	if !ok {
		t.Fatal("postgres-cdc is not registered as a source")
	}
	if e.Category != catalog.Database || e.Subcategory != "CDC" || len(e.Metrics) == 0 {
		t.Fatalf("meta: %+v", e.Meta)
	}
	want := []string{"host", "port", "database", "user", "password", "slot_name", "publication_name", "publication_tables",
		"auto_create_slot", "auto_create_publication", "schemas", "tables", "tls", "drop_slot_on_stop", "snapshot",
		"heartbeat_interval_secs", "column_filters"}
	for _, k := range want {
		if _, ok := spec.Lookup(e.Fields, k); !ok {
			t.Errorf("config key %q missing", k)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	cfg, ps := spec.DecodeString[Config](baseYAML, "sources.pg.config")
	if len(ps) > 0 {
		t.Fatal(spec.Problems(ps))
	}
	if cfg.Port != 5432 || !cfg.AutoCreateSlot || !cfg.AutoCreatePublication || cfg.TLS.Mode != "prefer" ||
		cfg.Snapshot.Mode != "initial" || cfg.Snapshot.BatchSize != 10000 || cfg.Snapshot.ParallelTables != 4 || cfg.DropSlotOnStop {
		t.Fatalf("defaults: %+v", cfg)
	}
	if _, err := New(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		yaml, path string
		words      []string
	}{
		{"snapshot:\n  mode: sometimes\n", "sources.pg.config.snapshot.mode", []string{"initial", "always", "never", "when_needed", "initial_only", "no_data"}},
		{"tls:\n  mode: maybe\n", "sources.pg.config.tls.mode", []string{"disable", "prefer", "require", "verify-ca", "verify-full"}},
		{"snapshot:\n  batch_size: 0\n", "sources.pg.config.snapshot.batch_size", nil},
		{"publication_tables: [orders]\n", "sources.pg.config.publication_tables[0]", []string{"schema.table"}},
		{"slot_name: Bad-Slot\n", "sources.pg.config.slot_name", []string{"lower-case"}},
		{"tls:\n  cert_path: /x.pem\n", "sources.pg.config.tls", []string{"key_path"}},
	}
	for _, c := range cases {
		y := baseYAML
		if strings.HasPrefix(c.yaml, "slot_name") {
			y = strings.Replace(y, "slot_name: rivven_slot\n", "", 1)
		}
		_, ps := spec.DecodeString[Config](y+c.yaml, "sources.pg.config")
		var found bool
		for _, p := range ps {
			if p.Path == c.path {
				found = true
				for _, w := range c.words {
					if !strings.Contains(p.Message, w) {
						t.Errorf("%s: message %q does not name %q", c.path, p.Message, w)
					}
				}
				if strings.Contains(p.Error(), "hunter2") {
					t.Errorf("password in error: %s", p.Error())
				}
			}
		}
		if !found {
			t.Errorf("%q: no problem at %s, got %v", c.yaml, c.path, ps)
		}
	}
}

func TestPositionRoundTrip(t *testing.T) {
	p, err := parsePosition([]byte(streamPosition(nil, 0x1_0000_00A0, 0x2_0000_0001, 42)))
	if err != nil || p.LSN != 0x1_0000_00A0 || p.TxLSN != 0x2_0000_0001 || p.TxN != 42 || p.Snap != nil {
		t.Fatalf("%+v %v", p, err)
	}
	v := "7"
	st := &snapState{Done: []string{"public.a"}, At: map[string][]*string{"public.b": {&v, nil}}}
	pos := snapPrefix(5, st, "public.c") + pkJSON([]*string{&v}) + "}}}"
	p, err = parsePosition([]byte(pos))
	if err != nil || p.LSN != 5 || len(p.Snap.Done) != 1 || *p.Snap.At["public.c"][0] != "7" || p.Snap.At["public.b"][1] != nil {
		t.Fatalf("%s: %+v %v", pos, p, err)
	}
	// A watermarked snapshot's progress with where each table's noting of
	// delivered keys began: what a restart re-reads the WAL from.
	inc := &snapState{Since: map[string]string{"public.b": "0/16A0000", "public.c": "0/16B0000"}, At: map[string][]*string{}}
	pos = incPrefix(0x16C0000, inc, "public.c") + pkJSON([]*string{&v}) + "}}}"
	p, err = parsePosition([]byte(pos))
	if err != nil || p.Inc == nil || p.Inc.sinceMin() != 0x16A0000 || p.Inc.Since["public.c"] != "0/16B0000" || *p.Inc.At["public.c"][0] != "7" {
		t.Fatalf("%s: %+v %v", pos, p, err)
	}
	if p, _ := parsePosition([]byte(streamPosition(nil, 0x16C0000, 0, 0, incSuffix(inc)))); p == nil || p.Inc.sinceMin() != 0x16A0000 {
		t.Fatalf("incSuffix: %+v", p)
	}
	if _, err := parsePosition([]byte("garbage")); err == nil {
		t.Fatal("garbage position accepted")
	}
}

func TestArrayAndStringHelpers(t *testing.T) {
	tc := newTypeCache(nil)
	for _, c := range []struct {
		oid       uint32
		text, out string
	}{
		{1007, `[0:1]={1,2}`, `[1,2]`},
		{1009, `{"a\"b","c\\d",NULL,""}`, `["a\"b","c\\d",null,""]`},
		{1009, `{}`, `[]`},
		{25, "\x01\xff", `"\u0001\ufffd"`},
		{1700, "-0.000001", `-0.000001`},
		{1700, "1e+30", `1e+30`},
		{1700, "NaN", `"NaN"`},
		{701, "-Infinity", `"-Infinity"`},
		{17, `\x`, `""`},
		{1114, "infinity", `"infinity"`},
	} {
		if got := string(tc.appendValue(nil, c.oid, []byte(c.text))); got != c.out {
			t.Errorf("%d %q = %s, want %s", c.oid, c.text, got, c.out)
		}
	}
}

func TestCheckUnreachable(t *testing.T) {
	cfg, _ := spec.DecodeString[Config](strings.Replace(baseYAML, "db.example.com", "127.0.0.1", 1)+"port: 1\n", "x")
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = s.(pipeline.Checker).Check(context.Background())
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("Check against a closed port: %v", err)
	}
}
