// Package srtest is an in-process schema registry for tests, following
// Confluent's Schema Registry REST API as documented
// (docs.confluent.io/platform/current/schema-registry/develop/api.html):
// subjects and their versions, global schema ids (one id per distinct
// schema and type, shared across subjects), lookups, per-subject and
// global compatibility levels checked on every registration (Avro by the
// Avro specification's schema resolution rules, JSON Schema and Protobuf
// by the rules below), error bodies {"error_code", "message"} with the
// documented codes, and optional basic or bearer authentication.
//
// JSON Schema compatibility (BACKWARD: the new schema reads what the old
// one wrote): a property's type may widen (integer to number, T to
// [T, "null"]), a property may be dropped, and a new property may not be
// required. Protobuf: a field number keeps its name's type or a
// wire-compatible one (int32, int64, uint32, uint64, bool; string and
// bytes).
package srtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/bufbuild/protocompile"
	"github.com/hamba/avro/v2"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Registry is the fake. Its zero value is not usable; use New.
type Registry struct {
	mu       sync.Mutex
	schemas  []stored // by id-1
	subjects map[string][]int
	compat   map[string]string // "" key: global
	// User and Password, or Token, when set, are required of every
	// request (basic or bearer).
	User, Password, Token string
	// Requests counts requests by "METHOD path" (for cache tests).
	Requests map[string]int
}

type stored struct {
	Schema string
	Type   string // AVRO, JSON, PROTOBUF
}

// New makes an empty registry with global compatibility BACKWARD, the
// Confluent default.
func New() *Registry {
	return &Registry{subjects: map[string][]int{}, compat: map[string]string{"": "BACKWARD"}, Requests: map[string]int{}}
}

// Server serves r over HTTP (httptest.NewServer) or, with tls, HTTPS
// (httptest.NewTLSServer: its certificate is the server's Certificate()).
func (r *Registry) Server(tls bool) *httptest.Server {
	if tls {
		return httptest.NewTLSServer(r)
	}
	return httptest.NewServer(r)
}

// Subjects returns the subjects and their schema ids by version.
func (r *Registry) Subjects() map[string][]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]int{}
	for s, ids := range r.subjects {
		out[s] = slices.Clone(ids)
	}
	return out
}

// Schema returns the schema text and type of an id.
func (r *Registry) Schema(id int) (string, string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if id < 1 || id > len(r.schemas) {
		return "", "", false
	}
	s := r.schemas[id-1]
	return s.Schema, s.Type, true
}

type apiError struct {
	status int
	code   int
	msg    string
}

func fail(w http.ResponseWriter, e apiError) {
	w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error_code": e.code, "message": e.msg})
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	_ = json.NewEncoder(w).Encode(v)
}

var (
	errSubjectNotFound = apiError{404, 40401, "Subject not found."}
	errVersionNotFound = apiError{404, 40402, "Version not found."}
	errSchemaNotFound  = apiError{404, 40403, "Schema not found"}
)

func (r *Registry) authorized(req *http.Request) bool {
	switch {
	case r.Token != "":
		return req.Header.Get("Authorization") == "Bearer "+r.Token
	case r.User != "":
		u, p, ok := req.BasicAuth()
		return ok && u == r.User && p == r.Password
	}
	return true
}

// ServeHTTP implements the REST API.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.authorized(req) {
		w.Header().Set("WWW-Authenticate", `Basic realm="SchemaRegistry"`)
		fail(w, apiError{401, 401, "Unauthorized"})
		return
	}
	path := strings.Trim(req.URL.EscapedPath(), "/")
	parts := strings.Split(path, "/")
	for i, p := range parts {
		if u, err := unescape(p); err == nil {
			parts[i] = u
		}
	}
	r.Requests[req.Method+" "+routeOf(parts)]++
	switch {
	case req.Method == "GET" && path == "subjects":
		out := []string{}
		for s, ids := range r.subjects {
			if len(ids) > 0 {
				out = append(out, s)
			}
		}
		slices.Sort(out)
		reply(w, out)
	case len(parts) == 3 && parts[0] == "subjects" && parts[2] == "versions" && req.Method == "POST":
		r.register(w, req, parts[1])
	case len(parts) == 3 && parts[0] == "subjects" && parts[2] == "versions" && req.Method == "GET":
		ids, ok := r.subjects[parts[1]]
		if !ok || len(ids) == 0 {
			fail(w, errSubjectNotFound)
			return
		}
		vs := make([]int, len(ids))
		for i := range ids {
			vs[i] = i + 1
		}
		reply(w, vs)
	case len(parts) == 4 && parts[0] == "subjects" && parts[2] == "versions" && req.Method == "GET":
		subject := parts[1]
		v, e := r.version(subject, parts[3])
		if e != nil {
			fail(w, *e)
			return
		}
		r.replyVersion(w, subject, v)
	case len(parts) == 2 && parts[0] == "subjects" && req.Method == "POST":
		r.lookup(w, req, parts[1])
	case len(parts) == 2 && parts[0] == "subjects" && req.Method == "DELETE":
		ids, ok := r.subjects[parts[1]]
		if !ok {
			fail(w, errSubjectNotFound)
			return
		}
		vs := make([]int, len(ids))
		for i := range ids {
			vs[i] = i + 1
		}
		delete(r.subjects, parts[1])
		delete(r.compat, parts[1])
		reply(w, vs)
	case len(parts) >= 3 && parts[0] == "schemas" && parts[1] == "ids" && req.Method == "GET":
		id, err := strconv.Atoi(parts[2])
		if err != nil || id < 1 || id > len(r.schemas) {
			fail(w, errSchemaNotFound)
			return
		}
		s := r.schemas[id-1]
		switch {
		case len(parts) == 3:
			out := map[string]any{"schema": s.Schema}
			if s.Type != "AVRO" {
				out["schemaType"] = s.Type
			}
			reply(w, out)
		case len(parts) == 4 && parts[3] == "subjects":
			out := []string{}
			for subj, ids := range r.subjects {
				if slices.Contains(ids, id) {
					out = append(out, subj)
				}
			}
			slices.Sort(out)
			reply(w, out)
		case len(parts) == 4 && parts[3] == "versions":
			out := []map[string]any{}
			for subj, ids := range r.subjects {
				for i, x := range ids {
					if x == id {
						out = append(out, map[string]any{"subject": subj, "version": i + 1})
					}
				}
			}
			reply(w, out)
		default:
			fail(w, apiError{404, 404, "HTTP 404 Not Found"})
		}
	case len(parts) <= 2 && parts[0] == "config":
		subject := ""
		if len(parts) == 2 {
			subject = parts[1]
		}
		if req.Method == "PUT" {
			var body struct {
				Compatibility string `json:"compatibility"`
			}
			if err := json.NewDecoder(req.Body).Decode(&body); err != nil || !validLevel(body.Compatibility) {
				fail(w, apiError{422, 42203, "Invalid compatibility level"})
				return
			}
			r.compat[subject] = body.Compatibility
			reply(w, map[string]string{"compatibility": body.Compatibility})
			return
		}
		level, ok := r.compat[subject]
		if !ok {
			if req.URL.Query().Get("defaultToGlobal") != "true" {
				fail(w, apiError{404, 40408, "Subject does not have subject-level compatibility configured"})
				return
			}
			level = r.compat[""]
		}
		reply(w, map[string]string{"compatibilityLevel": level})
	case len(parts) == 5 && parts[0] == "compatibility" && parts[1] == "subjects" && parts[3] == "versions" && req.Method == "POST":
		s, e := decodeSchema(req)
		if e != nil {
			fail(w, *e)
			return
		}
		v, e := r.version(parts[2], parts[4])
		if e != nil {
			fail(w, *e)
			return
		}
		old := r.schemas[r.subjects[parts[2]][v-1]-1]
		msg := compatible(r.level(parts[2]), s, []stored{old})
		out := map[string]any{"is_compatible": msg == ""}
		if msg != "" {
			out["messages"] = []string{msg}
		}
		reply(w, out)
	default:
		fail(w, apiError{404, 404, "HTTP 404 Not Found"})
	}
}

func unescape(s string) (string, error) { return url.PathUnescape(s) }

// routeOf is a request's route with names and numbers as placeholders.
func routeOf(parts []string) string {
	out := slices.Clone(parts)
	switch {
	case len(out) >= 2 && out[0] == "subjects":
		out[1] = "{subject}"
		if len(out) == 4 {
			out[3] = "{version}"
		}
	case len(out) >= 3 && out[0] == "schemas":
		out[2] = "{id}"
	case len(out) == 2 && out[0] == "config":
		out[1] = "{subject}"
	}
	return "/" + strings.Join(out, "/")
}

func validLevel(l string) bool {
	switch l {
	case "NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE":
		return true
	}
	return false
}

func (r *Registry) level(subject string) string {
	if l, ok := r.compat[subject]; ok {
		return l
	}
	return r.compat[""]
}

// version resolves "latest", "-1" or a number of a subject.
func (r *Registry) version(subject, v string) (int, *apiError) {
	ids, ok := r.subjects[subject]
	if !ok || len(ids) == 0 {
		return 0, &errSubjectNotFound
	}
	if v == "latest" || v == "-1" {
		return len(ids), nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > len(ids) {
		return 0, &errVersionNotFound
	}
	return n, nil
}

func (r *Registry) replyVersion(w http.ResponseWriter, subject string, v int) {
	id := r.subjects[subject][v-1]
	s := r.schemas[id-1]
	out := map[string]any{"subject": subject, "version": v, "id": id, "schema": s.Schema}
	if s.Type != "AVRO" {
		out["schemaType"] = s.Type
	}
	reply(w, out)
}

func decodeSchema(req *http.Request) (stored, *apiError) {
	var body struct {
		Schema     string            `json:"schema"`
		SchemaType string            `json:"schemaType"`
		References []json.RawMessage `json:"references"`
	}
	if err := json.NewDecoder(req.Body).Decode(&body); err != nil {
		return stored{}, &apiError{422, 42201, "Invalid schema: " + err.Error()}
	}
	if body.SchemaType == "" {
		body.SchemaType = "AVRO"
	}
	if len(body.References) > 0 {
		return stored{}, &apiError{422, 42201, "Invalid schema: references are not supported by this fake"}
	}
	s := stored{Schema: body.Schema, Type: body.SchemaType}
	if err := parse(s); err != nil {
		return stored{}, &apiError{422, 42201, "Invalid schema " + err.Error()}
	}
	return s, nil
}

// canonical compares schemas the way the registry does: Avro by its
// parsing canonical form, JSON by its compact form, Protobuf as text.
func canonical(s stored) string {
	switch s.Type {
	case "AVRO":
		if sch, err := avro.ParseWithCache(s.Schema, "", &avro.SchemaCache{}); err == nil {
			return "AVRO " + sch.String()
		}
	case "JSON":
		var v any
		if json.Unmarshal([]byte(s.Schema), &v) == nil {
			b, _ := json.Marshal(v)
			return "JSON " + string(b)
		}
	}
	return s.Type + " " + strings.TrimSpace(s.Schema)
}

func parse(s stored) error {
	switch s.Type {
	case "AVRO":
		_, err := avro.ParseWithCache(s.Schema, "", &avro.SchemaCache{})
		return err
	case "JSON":
		var v map[string]any
		return json.Unmarshal([]byte(s.Schema), &v)
	case "PROTOBUF":
		_, err := protoFields(s.Schema)
		return err
	}
	return fmt.Errorf("unknown schemaType %s", s.Type)
}

func (r *Registry) register(w http.ResponseWriter, req *http.Request, subject string) {
	s, e := decodeSchema(req)
	if e != nil {
		fail(w, *e)
		return
	}
	ids := r.subjects[subject]
	for _, id := range ids {
		if canonical(r.schemas[id-1]) == canonical(s) {
			reply(w, map[string]int{"id": id})
			return
		}
	}
	var prev []stored
	for _, id := range ids {
		prev = append(prev, r.schemas[id-1])
	}
	if msg := compatible(r.level(subject), s, prev); msg != "" {
		fail(w, apiError{409, 409, "Schema being registered is incompatible with an earlier schema for subject \"" + subject + "\", details: [" + msg + "]"})
		return
	}
	id := 0
	for i, x := range r.schemas {
		if canonical(x) == canonical(s) {
			id = i + 1
		}
	}
	if id == 0 {
		r.schemas = append(r.schemas, s)
		id = len(r.schemas)
	}
	r.subjects[subject] = append(ids, id)
	reply(w, map[string]int{"id": id})
}

func (r *Registry) lookup(w http.ResponseWriter, req *http.Request, subject string) {
	s, e := decodeSchema(req)
	if e != nil {
		fail(w, *e)
		return
	}
	ids, ok := r.subjects[subject]
	if !ok || len(ids) == 0 {
		fail(w, errSubjectNotFound)
		return
	}
	for i, id := range ids {
		if canonical(r.schemas[id-1]) == canonical(s) {
			r.replyVersion(w, subject, i+1)
			return
		}
	}
	fail(w, errSchemaNotFound)
}

// compatible checks s against the earlier versions of a subject (the
// latest, or all for *_TRANSITIVE) at a level; it returns why not, or "".
func compatible(level string, s stored, prev []stored) string {
	if level == "NONE" || len(prev) == 0 {
		return ""
	}
	if !strings.HasSuffix(level, "_TRANSITIVE") {
		prev = prev[len(prev)-1:]
	}
	base := strings.TrimSuffix(level, "_TRANSITIVE")
	for _, old := range prev {
		if old.Type != s.Type {
			return fmt.Sprintf("schema type %s differs from the earlier %s", s.Type, old.Type)
		}
		if base == "BACKWARD" || base == "FULL" {
			if msg := reads(s, old); msg != "" {
				return "BACKWARD: " + msg
			}
		}
		if base == "FORWARD" || base == "FULL" {
			if msg := reads(old, s); msg != "" {
				return "FORWARD: " + msg
			}
		}
	}
	return ""
}

// reads says why a reader schema cannot read what writer wrote, or "".
func reads(reader, writer stored) string {
	switch reader.Type {
	case "AVRO":
		rs, err1 := avro.ParseWithCache(reader.Schema, "", &avro.SchemaCache{})
		ws, err2 := avro.ParseWithCache(writer.Schema, "", &avro.SchemaCache{})
		if err1 != nil || err2 != nil {
			return "unparsable schema"
		}
		if err := avro.NewSchemaCompatibility().Compatible(rs, ws); err != nil {
			return err.Error()
		}
	case "JSON":
		return jsonReads(reader.Schema, writer.Schema)
	case "PROTOBUF":
		rf, err1 := protoFields(reader.Schema)
		wf, err2 := protoFields(writer.Schema)
		if err1 != nil || err2 != nil {
			return "unparsable schema"
		}
		for n, wk := range wf {
			if rk, ok := rf[n]; ok && wireClass(rk) != wireClass(wk) {
				return fmt.Sprintf("field %d changed from %s to %s, which is not wire-compatible", n, wk, rk)
			}
		}
	}
	return ""
}

type jsonObject struct {
	Properties map[string]struct {
		Type json.RawMessage `json:"type"`
	} `json:"properties"`
	Required []string `json:"required"`
}

func jsonTypes(raw json.RawMessage) []string {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}
	}
	var many []string
	_ = json.Unmarshal(raw, &many)
	return many
}

func jsonReads(reader, writer string) string {
	var r, w jsonObject
	if json.Unmarshal([]byte(reader), &r) != nil || json.Unmarshal([]byte(writer), &w) != nil {
		return "unparsable schema"
	}
	for _, req := range r.Required {
		if !slices.Contains(w.Required, req) {
			return fmt.Sprintf("property %q is required but was not", req)
		}
	}
	for name, wp := range w.Properties {
		rp, ok := r.Properties[name]
		if !ok {
			continue
		}
		rt := jsonTypes(rp.Type)
		for _, t := range jsonTypes(wp.Type) {
			if !slices.Contains(rt, t) && !(t == "integer" && slices.Contains(rt, "number")) {
				return fmt.Sprintf("property %q: type %s was written, the reader takes %v", name, t, rt)
			}
		}
	}
	return ""
}

// protoFields maps the field numbers of the first message to their kinds.
func protoFields(text string) (map[protoreflect.FieldNumber]protoreflect.Kind, error) {
	comp := protocompile.Compiler{Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
		Accessor: protocompile.SourceAccessorFromMap(map[string]string{"s.proto": text}),
	})}
	files, err := comp.Compile(context.Background(), "s.proto")
	if err != nil {
		return nil, err
	}
	if files[0].Messages().Len() == 0 {
		return nil, fmt.Errorf("no message")
	}
	fs := files[0].Messages().Get(0).Fields()
	out := map[protoreflect.FieldNumber]protoreflect.Kind{}
	for i := 0; i < fs.Len(); i++ {
		out[fs.Get(i).Number()] = fs.Get(i).Kind()
	}
	return out, nil
}

func wireClass(k protoreflect.Kind) string {
	switch k {
	case protoreflect.Int32Kind, protoreflect.Int64Kind, protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.BoolKind:
		return "varint"
	case protoreflect.StringKind, protoreflect.BytesKind:
		return "bytes"
	}
	return k.String()
}
