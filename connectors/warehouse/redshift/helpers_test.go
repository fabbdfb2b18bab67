package redshift

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/spec"
	"github.com/rivven/rivven-connect/shared/testenv"
)

const (
	pgAddr = "127.0.0.1:5432"
	pgURL  = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	role   = "arn:aws:iam::123456789012:role/RedshiftCopy"
)

// pgTable creates a table from ddl ($T is its unique name) on the real
// PostgreSQL and drops it afterwards.
func pgTable(t testing.TB, ddl string) (string, *sql.DB) {
	t.Helper()
	testenv.RequireService(t, "postgres", pgAddr)
	db, err := sql.Open("pgx", pgURL)
	if err != nil {
		t.Fatal(err)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "rs_" + hex.EncodeToString(b[:])
	if _, err := db.Exec(strings.ReplaceAll(ddl, "$T", name)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = db.Exec("DROP TABLE IF EXISTS " + name)
		db.Close()
	})
	return name, db
}

func newSink(t testing.TB, y string) *Sink {
	t.Helper()
	cfg, ps := spec.DecodeString[Config](y, "config")
	if len(ps) > 0 {
		t.Fatalf("config: %v", spec.Problems(ps))
	}
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func ev(tp events.Type, data string) *events.Event {
	return events.New(tp, "orders", events.RawPayload([]byte(data)))
}

func keyed(tp events.Type, key, data string) *events.Event {
	e := ev(tp, data)
	e.Key = json.RawMessage(key)
	return e
}

// query returns the rows of q as '|'-joined text, NULL as ∅.
func query(t testing.TB, db *sql.DB, q string) []string {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		parts := make([]string, len(cols))
		for i, v := range vals {
			parts[i] = "∅"
			if v.Valid {
				parts[i] = v.String
			}
		}
		out = append(out, strings.Join(parts, "|"))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// fakeS3 runs gofakes3 (an in-process S3 API) with bucket "stage" and
// returns its URL and a client of the test's own (not the sink's writer)
// to read objects back.
func fakeS3(t testing.TB) (string, *s3.Client) {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket("stage"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	return srv.URL, s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider("reader", "reader", ""),
	})
}

// s3Block is the sink's s3 config for the fake.
func s3Block(url string) string {
	return fmt.Sprintf("iam_role: %s\ns3:\n  bucket: stage\n  endpoint: %s\n  force_path_style: true\n  region: us-east-1\n  access_key_id: test\n  secret_access_key: test\n", role, url)
}

// copyLog is what the COPY emulation saw.
type copyLog struct {
	mu      sync.Mutex
	stmts   []*copyStmt
	objects [][]map[string]any // each staged file's rows as read back
}

// emulateCopy replaces the sink's COPY with what Redshift does for it,
// done with readers the sink did not write: the statement is parsed by
// the documented COPY grammar and must name the role, JSON 'auto' and
// GZIP; the object is fetched from the fake S3 with the test's own
// client, gunzipped by compress/gzip and read line by line by
// encoding/json; PostgreSQL itself maps each JSON object's keys to the
// listed columns (json_populate_recordset), as JSON 'auto' does.
func emulateCopy(t testing.TB, s *Sink, client *s3.Client) *copyLog {
	log := &copyLog{}
	s.runCopy = func(ctx context.Context, tx *sql.Tx, stmt string) error {
		c, err := parseCopy(stmt)
		if err != nil {
			t.Errorf("COPY does not parse by Redshift's grammar: %v\n%s", err, stmt)
			return err
		}
		if c.params["IAM_ROLE"][0] != s.cfg.IAMRole || c.format != "JSON" || c.params["JSON"][0] != "auto" {
			t.Errorf("COPY options: %s", stmt)
		}
		if _, ok := c.params["GZIP"]; !ok {
			t.Errorf("COPY without GZIP: %s", stmt)
		}
		bucket, key, _ := strings.Cut(strings.TrimPrefix(c.from, "s3://"), "/")
		out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			return fmt.Errorf("S3ServiceException: %w", err)
		}
		defer out.Body.Close()
		zr, err := gzip.NewReader(out.Body)
		if err != nil {
			t.Errorf("staged object is not gzip: %v", err)
			return err
		}
		var objs []map[string]any
		var lines []string
		sc := bufio.NewScanner(zr)
		sc.Buffer(nil, 4<<20)
		for sc.Scan() {
			dec := json.NewDecoder(strings.NewReader(sc.Text()))
			dec.UseNumber()
			var m map[string]any
			if err := dec.Decode(&m); err != nil {
				t.Errorf("staged line is not a JSON object: %v: %s", err, sc.Text())
				return err
			}
			objs = append(objs, m)
			lines = append(lines, sc.Text())
		}
		if err := sc.Err(); err != nil {
			return err
		}
		log.mu.Lock()
		log.stmts = append(log.stmts, c)
		log.objects = append(log.objects, objs)
		log.mu.Unlock()
		q := make([]string, len(c.cols))
		for i, col := range c.cols {
			q[i] = quote(col)
		}
		cols := strings.Join(q, ", ")
		_, err = tx.ExecContext(ctx, fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM json_populate_recordset(NULL::%s, $1)",
			quote(c.table), cols, cols, quote(c.table)), "["+strings.Join(lines, ",")+"]")
		return err
	}
	return log
}
