package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"

	"github.com/rivven/rivven-connect/shared/testenv"
)

const pgAddr = "127.0.0.1:5432"

// hopSpan is a span as the collector got it, with the process that sent
// it (the service instance id each process's resource carries).
type hopSpan struct {
	name, trace, id, parent, process string
	attrs                            map[string]string
}

// TestTraceFollowsAPostgresChangeAcrossProcesses follows one trace id
// from a row committed in PostgreSQL through `run source` (postgres-cdc),
// the Redis Streams topic and `run sink`, two processes exporting to one
// OTLP collector: the sink's write span is a child of the source's read
// span of the same row, in the same trace.
func TestTraceFollowsAPostgresChangeAcrossProcesses(t *testing.T) {
	testenv.RequireService(t, "postgres", pgAddr)
	e := newRunEnv(t)
	ctx := context.Background()
	db, err := pgx.Connect(ctx, "postgres://postgres@"+pgAddr+"/postgres?sslmode=disable")
	if err != nil {
		testenv.Unavailable(t, "postgres: %v", err)
	}
	id := strconv.FormatInt(time.Now().UnixNano(), 36)
	table, slot := "trace_"+id, "trace_"+id
	if _, err := db.Exec(ctx, "CREATE TABLE "+table+" (id int PRIMARY KEY, note text)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c := context.Background()
		// The source process is gone by now; its slot is free to drop.
		for i := 0; i < 50; i++ {
			if _, err := db.Exec(c, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", slot); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		db.Exec(c, "DROP PUBLICATION IF EXISTS "+slot)
		db.Exec(c, "DROP TABLE IF EXISTS "+table)
		db.Close(c)
	})

	collectorURL, collected := otlpCollector(t)

	file := writeFile(t, fmt.Sprintf(`
settings:
  state: {redis_url: "redis://%s/0"}
sources:
  %s:
    connector: postgres-cdc
    topic: %s
    config:
      host: 127.0.0.1
      database: postgres
      user: postgres
      password: ""
      slot_name: %s
      publication_name: %s
      publication_tables: [public.%s]
      snapshot: {mode: never}
      heartbeat_interval_secs: 0
sinks:
  %s:
    connector: drop
    topics: [%s]
`, redisAddr, e.source, e.topc, slot, slot, table, e.sink, e.topc))

	bin := buildCLI(t)
	env := append(os.Environ(), "OTEL_EXPORTER_OTLP_ENDPOINT="+collectorURL, "OTEL_BSP_SCHEDULE_DELAY=100")
	src := startEnv(t, bin, env, "run", "source", e.source, "-c", file)
	sink := startEnv(t, bin, env, "run", "sink", e.sink, "-c", file)
	until(t, "the replication slot", func() bool {
		var n int
		_ = db.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1 AND active", slot).Scan(&n)
		return n == 1 || src.exited()
	})
	if src.exited() {
		t.Fatalf("run source exited: %s", src.stderr)
	}
	if _, err := db.Exec(ctx, "INSERT INTO "+table+" VALUES (1, 'traced')"); err != nil {
		t.Fatal(err)
	}
	var read, write hopSpan
	var spans []hopSpan
	until(t, "the source's read span and the sink's write span of the row", func() bool {
		spans = collected()
		for _, s := range spans {
			if s.name == "read "+e.source {
				read = s
			}
		}
		for _, s := range spans {
			if s.name == "write "+e.sink && read.id != "" && s.parent == read.id {
				write = s
				return true
			}
		}
		return src.exited() || sink.exited()
	})
	for _, p := range []*proc{src, sink} {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		p.wait(t)
	}
	if write.id == "" {
		t.Fatalf("no write span under the read span %+v; spans %+v\nsource:\n%s\nsink:\n%s", read, spans, src.stderr, sink.stderr)
	}
	if write.trace != read.trace || read.trace == strings.Repeat("0", 32) {
		t.Fatalf("read in trace %s, write in trace %s", read.trace, write.trace)
	}
	if read.process == "" || read.process == write.process {
		t.Errorf("the spans came from processes %q and %q; want two", read.process, write.process)
	}
	if read.attrs["rivven.position"] == "" || read.attrs["rivven.stream"] != "public."+table && read.attrs["rivven.stream"] != table {
		t.Errorf("read span attributes %v", read.attrs)
	}
	if write.attrs["messaging.destination.name"] != e.topc {
		t.Errorf("write span attributes %v (want the topic %s)", write.attrs, e.topc)
	}
	t.Logf("trace %s: read %s (source process %s) → write %s (sink process %s)", read.trace, read.id, read.process, write.id, write.process)
}

// otlpCollector is an OTLP/HTTP endpoint that decodes trace exports with
// the OTLP protobuf definitions; spans returns what it got so far.
func otlpCollector(t *testing.T) (url string, spans func() []hopSpan) {
	var mu sync.Mutex
	var got []hopSpan
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltrace.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
			http.Error(w, "not an OTLP trace export", http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, rs := range req.ResourceSpans {
			process := ""
			for _, a := range rs.Resource.Attributes {
				if a.Key == "service.instance.id" {
					process = a.Value.GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					got = append(got, hopSpan{name: s.Name, trace: hex.EncodeToString(s.TraceId), id: hex.EncodeToString(s.SpanId),
						parent: hex.EncodeToString(s.ParentSpanId), process: process, attrs: attrMap(s.Attributes)})
				}
			}
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() []hopSpan {
		mu.Lock()
		defer mu.Unlock()
		return append([]hopSpan(nil), got...)
	}
}

func attrMap(kvs []*commonpb.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		m[kv.Key] = kv.Value.GetStringValue()
	}
	return m
}
