package iceberg

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	ice "github.com/apache/iceberg-go"
	icecat "github.com/apache/iceberg-go/catalog"
	icesql "github.com/apache/iceberg-go/catalog/sql"
	"github.com/apache/iceberg-go/table"
)

// restServer is an Iceberg REST catalog following the REST catalog OpenAPI
// spec (open-api/rest-catalog-open-api.yaml of apache/iceberg): the config
// endpoint with a path prefix override, OAuth client credentials at
// /v1/oauth/tokens, namespaces and tables (create, load, exists, commit
// with requirements), errors as ErrorModel with the spec's exception
// types. Metadata handling is delegated to iceberg-go's SQL catalog on the
// real PostgreSQL, so commits are real compare-and-swaps. It checks what a
// catalog checks: the bearer token, the prefix, the warehouse asked for.
type restServer struct {
	t         *testing.T
	cat       *icesql.Catalog
	warehouse string
	clientID  string
	secret    string
	token     string

	mu       sync.Mutex
	requests []string
	commits  int
	// conflictOnce, when set, makes the next commit answer 409 after
	// another writer's commit: it runs first.
	conflictOnce func()
}

const restPrefix = "wh-main"

func newRESTServer(t *testing.T, e *env) (*restServer, *httptest.Server) {
	t.Helper()
	db, err := sql.Open("pgx", pgURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cat, err := icesql.NewCatalog(e.name, db, icesql.Postgres, ice.Properties{"warehouse": "file://" + e.warehouse})
	if err != nil {
		t.Fatal(err)
	}
	rs := &restServer{t: t, cat: cat, warehouse: "lakehouse", clientID: "rivven", secret: "s3cr3t-client", token: "tok-" + e.name}
	srv := httptest.NewServer(rs)
	t.Cleanup(srv.Close)
	return rs, srv
}

type errorModel struct {
	Error struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    int    `json:"code"`
	} `json:"error"`
}

func (rs *restServer) fail(w http.ResponseWriter, code int, typ, msg string) {
	var em errorModel
	em.Error.Message, em.Error.Type, em.Error.Code = msg, typ, code
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(em)
}

func (rs *restServer) reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (rs *restServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rs.mu.Lock()
	rs.requests = append(rs.requests, r.Method+" "+r.URL.Path)
	rs.mu.Unlock()
	ctx := r.Context()
	if r.URL.Path == "/v1/oauth/tokens" {
		// client_credentials grant, credentials in the form (the spec's
		// OAuthClientCredentialsRequest).
		if err := r.ParseForm(); err != nil || r.Form.Get("grant_type") != "client_credentials" ||
			r.Form.Get("client_id") != rs.clientID || r.Form.Get("client_secret") != rs.secret {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"invalid_client","error_description":"bad client credentials"}`)
			return
		}
		rs.reply(w, map[string]any{"access_token": rs.token, "token_type": "bearer", "expires_in": 3600, "issued_token_type": "urn:ietf:params:oauth:token-type:access_token"})
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+rs.token {
		rs.fail(w, http.StatusUnauthorized, "NotAuthorizedException", "missing or wrong bearer token")
		return
	}
	if r.URL.Path == "/v1/config" {
		if r.URL.Query().Get("warehouse") != rs.warehouse {
			rs.fail(w, http.StatusNotFound, "NoSuchWarehouseException", "unknown warehouse "+r.URL.Query().Get("warehouse"))
			return
		}
		rs.reply(w, map[string]any{"defaults": map[string]string{}, "overrides": map[string]string{"prefix": restPrefix}})
		return
	}
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/v1/"+restPrefix+"/namespaces")
	if !ok {
		rs.fail(w, http.StatusNotFound, "NoSuchEndpointException", "no endpoint "+r.URL.Path)
		return
	}
	parts := strings.Split(strings.TrimPrefix(rest, "/"), "/")
	if rest == "" {
		parts = nil
	}
	var ns table.Identifier
	if len(parts) > 0 {
		raw, err := url.PathUnescape(parts[0])
		if err != nil {
			rs.fail(w, http.StatusBadRequest, "BadRequestException", err.Error())
			return
		}
		ns = strings.Split(raw, "\x1f") // the spec's multipart namespace separator
	}
	switch {
	case len(parts) == 0 && r.Method == http.MethodPost:
		var req struct {
			Namespace  []string          `json:"namespace"`
			Properties map[string]string `json:"properties"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			rs.fail(w, http.StatusBadRequest, "BadRequestException", err.Error())
			return
		}
		err := rs.cat.CreateNamespace(ctx, req.Namespace, req.Properties)
		if errors.Is(err, icecat.ErrNamespaceAlreadyExists) {
			rs.fail(w, http.StatusConflict, "AlreadyExistsException", err.Error())
			return
		} else if err != nil {
			rs.fail(w, http.StatusInternalServerError, "ServerErrorException", err.Error())
			return
		}
		rs.reply(w, map[string]any{"namespace": req.Namespace, "properties": map[string]string{}})
	case len(parts) == 1 && (r.Method == http.MethodHead || r.Method == http.MethodGet):
		exists, err := rs.cat.CheckNamespaceExists(ctx, ns)
		switch {
		case err != nil:
			rs.fail(w, http.StatusInternalServerError, "ServerErrorException", err.Error())
		case !exists:
			rs.fail(w, http.StatusNotFound, "NoSuchNamespaceException", "no namespace "+strings.Join(ns, "."))
		case r.Method == http.MethodHead:
			w.WriteHeader(http.StatusNoContent)
		default:
			rs.reply(w, map[string]any{"namespace": ns, "properties": map[string]string{}})
		}
	case len(parts) == 2 && parts[1] == "tables" && r.Method == http.MethodPost:
		var req struct {
			Name          string             `json:"name"`
			Schema        *ice.Schema        `json:"schema"`
			PartitionSpec *ice.PartitionSpec `json:"partition-spec"`
			Properties    map[string]string  `json:"properties"`
			StageCreate   bool               `json:"stage-create"`
			WriteOrder    *table.SortOrder   `json:"write-order"`
			Location      string             `json:"location"`
			Extra         map[string]any     `json:"-"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Name == "" || req.Schema == nil {
			rs.fail(w, http.StatusBadRequest, "BadRequestException", "CreateTableRequest needs name and schema")
			return
		}
		opts := []icecat.CreateTableOpt{icecat.WithProperties(req.Properties)}
		if req.PartitionSpec != nil {
			opts = append(opts, icecat.WithPartitionSpec(req.PartitionSpec))
		}
		tbl, err := rs.cat.CreateTable(ctx, append(slices.Clone(ns), req.Name), req.Schema, opts...)
		switch {
		case errors.Is(err, icecat.ErrTableAlreadyExists):
			rs.fail(w, http.StatusConflict, "AlreadyExistsException", err.Error())
		case errors.Is(err, icecat.ErrNoSuchNamespace):
			rs.fail(w, http.StatusNotFound, "NoSuchNamespaceException", err.Error())
		case err != nil:
			rs.fail(w, http.StatusInternalServerError, "ServerErrorException", err.Error())
		default:
			rs.reply(w, map[string]any{"metadata-location": tbl.MetadataLocation(), "metadata": tbl.Metadata(), "config": map[string]string{}})
		}
	case len(parts) == 3 && parts[1] == "tables":
		ident := append(slices.Clone(ns), parts[2])
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			tbl, err := rs.cat.LoadTable(ctx, ident)
			switch {
			case errors.Is(err, icecat.ErrNoSuchTable), errors.Is(err, icecat.ErrNoSuchNamespace):
				rs.fail(w, http.StatusNotFound, "NoSuchTableException", err.Error())
			case err != nil:
				rs.fail(w, http.StatusInternalServerError, "ServerErrorException", err.Error())
			case r.Method == http.MethodHead:
				w.WriteHeader(http.StatusNoContent)
			default:
				rs.reply(w, map[string]any{"metadata-location": tbl.MetadataLocation(), "metadata": tbl.Metadata(), "config": map[string]string{}})
			}
		case http.MethodPost:
			var req struct {
				Requirements table.Requirements `json:"requirements"`
				Updates      table.Updates      `json:"updates"`
			}
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
				rs.fail(w, http.StatusBadRequest, "BadRequestException", "CommitTableRequest: "+err.Error())
				return
			}
			rs.mu.Lock()
			hook := rs.conflictOnce
			rs.conflictOnce = nil
			rs.mu.Unlock()
			if hook != nil {
				hook()
			}
			meta, loc, err := rs.cat.CommitTable(ctx, ident, req.Requirements, req.Updates)
			switch {
			case err != nil && (errors.Is(err, table.ErrCommitFailed) || strings.Contains(err.Error(), "requirement failed")):
				rs.fail(w, http.StatusConflict, "CommitFailedException", err.Error())
			case errors.Is(err, icecat.ErrNoSuchTable):
				rs.fail(w, http.StatusNotFound, "NoSuchTableException", err.Error())
			case err != nil:
				rs.fail(w, http.StatusInternalServerError, "ServerErrorException", err.Error())
			default:
				rs.mu.Lock()
				rs.commits++
				rs.mu.Unlock()
				rs.reply(w, map[string]any{"metadata-location": loc, "metadata": meta})
			}
		default:
			rs.fail(w, http.StatusMethodNotAllowed, "BadRequestException", r.Method)
		}
	default:
		rs.fail(w, http.StatusNotFound, "NoSuchEndpointException", r.Method+" "+r.URL.Path)
	}
}

func (e *env) restConfig(uri, warehouse, credential string) *Config {
	c := e.config(nil)
	c.Catalog = CatalogConfig{Type: CatalogREST, REST: &RESTOptions{URI: uri, Warehouse: warehouse, Credential: credential}}
	if ps := c.Validate(); len(ps) > 0 {
		e.t.Fatalf("config: %v", ps)
	}
	return c
}

// TestRESTCatalog: through the REST catalog (client credentials, then a
// bearer token), batches become snapshots, a redelivery is skipped, a 409
// CommitFailedException is retried on the reloaded table, and the table is
// read back by iceberg-go's scan through the catalog's own storage and by
// hyparquet.
func TestRESTCatalog(t *testing.T) {
	e := newEnv(t)
	rs, srv := newRESTServer(t, e)
	ctx := context.Background()

	s := e.sink(e.restConfig(srv.URL, "lakehouse", "rivven:s3cr3t-client"))
	if err := s.Write(ctx, orders(0, 100, 0)); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, orders(50, 100, 0)); err != nil { // half redelivered
		t.Fatal(err)
	}
	// A second sink with the bearer token the catalog issued; another
	// writer's commit lands before this one's, which gets 409.
	other := e.sink(e.restConfig(srv.URL, "lakehouse", rs.token))
	rs.conflictOnce = func() {
		if err := other.Write(ctx, orders(500, 10, 1)); err != nil {
			t.Error(err)
		}
	}
	if err := s.Write(ctx, orders(150, 10, 0)); err != nil {
		t.Fatal(err)
	}
	tbl := e.load("analytics", "orders")
	want := append(seq(0, 160), seq(500, 10)...)
	if got := ids(t, scan(t, tbl)); !slices.Equal(got, want) {
		t.Fatalf("read %d rows, want %d once each", len(got), len(want))
	}
	if n := len(tbl.Metadata().Snapshots()); n != 4 {
		t.Errorf("%d snapshots, want 4", n)
	}
	files := dataFiles(t, tbl)
	if len(files) != 4 {
		t.Errorf("%d data files", len(files))
	}
	rs.mu.Lock()
	reqs := strings.Join(rs.requests, "\n") + "\n"
	rs.mu.Unlock()
	for _, want := range []string{"GET /v1/config", "POST /v1/oauth/tokens", "POST /v1/" + restPrefix + "/namespaces", "POST /v1/" + restPrefix + "/namespaces/analytics/tables", "POST /v1/" + restPrefix + "/namespaces/analytics/tables/orders"} {
		if !strings.Contains(reqs, want+"\n") {
			t.Errorf("no request %q among:\n%s", want, reqs)
		}
	}

	// Four commits succeeded; the one that met the other writer's commit
	// was answered 409 and sent again.
	if n := strings.Count(reqs, "POST /v1/"+restPrefix+"/namespaces/analytics/tables/orders\n"); n != 5 || rs.commits != 4 {
		t.Errorf("%d commit requests, %d succeeded; want 5 and 4:\n%s", n, rs.commits, reqs)
	}

	// Wrong credentials and an unknown warehouse are errors at start,
	// without the secret in them.
	if _, err := newSink(ctx, e.restConfig(srv.URL, "lakehouse", "rivven:wrong-secret")); err == nil || strings.Contains(err.Error(), "wrong-secret") {
		t.Errorf("wrong client secret: %v", err)
	}
	if _, err := newSink(ctx, e.restConfig(srv.URL, "elsewhere", rs.token)); err == nil || strings.Contains(err.Error(), rs.token) {
		t.Errorf("unknown warehouse: %v", err)
	}
}
