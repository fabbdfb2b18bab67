package bigquery

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/bigquery/storage/apiv1/storagepb"
	bqv2 "google.golang.org/api/bigquery/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// fakeBQ is BigQuery as this sink meets it, built from Google's
// documentation of the two APIs:
//
//   - the REST API's tables.get and tables.insert
//     (projects/{p}/datasets/{d}/tables[/{t}]), with the Table resource's
//     JSON (google.golang.org/api/bigquery/v2 types) and 404/409 errors;
//   - the Storage Write API's BigQueryWrite gRPC service (the generated
//     storagepb service definitions): CreateWriteStream, GetWriteStream,
//     FinalizeWriteStream and the AppendRows bidi stream, where the first
//     request of a connection names the stream and carries the writer
//     schema (a DescriptorProto), rows are serialized protobuf messages,
//     and offsets are enforced as AppendRowsResponse documents: an offset
//     already written is refused with ALREADY_EXISTS, one past the end of
//     the stream with OUT_OF_RANGE, an offset on the _default stream with
//     INVALID_ARGUMENT; a row that does not fit its column is refused with
//     INVALID_ARGUMENT and row_errors (FIELDS_ERROR), nothing written.
//
// Rows are decoded with the descriptor the client sent (dynamicpb, not
// the sink's encoder) and checked against the table's columns: each
// field must name a column and have a proto type the documentation
// accepts for the column's type. The stored rows are the decoded values
// in BigQuery's canonical text (TIMESTAMP as RFC 3339 UTC, DATETIME and
// TIME unpacked from the civil encoding, NUMERIC from its scaled two's
// complement bytes), so tests compare against values, not encodings.
type fakeBQ struct {
	storagepb.UnimplementedBigQueryWriteServer
	t testing.TB

	mu      sync.Mutex
	tables  map[string]*fakeTable // by "projects/p/datasets/d/tables/t"
	streams map[string]*fakeStream
	n       int

	// loseAcks makes the next n appends write their rows and then break
	// the connection before the response (a lost acknowledgement).
	loseAcks int
	// refuse makes the next n appends fail with UNAVAILABLE, nothing written.
	refuse int
	// appends counts AppendRows requests.
	appends int

	rest *httptest.Server
	addr string
}

type fakeTable struct {
	meta *bqv2.Table
	rows []map[string]any
}

type fakeStream struct {
	name, table string
	typ         storagepb.WriteStream_Type
	length      int64
	finalized   bool
}

func newFake(t testing.TB) *fakeBQ {
	f := &fakeBQ{t: t, tables: map[string]*fakeTable{}, streams: map[string]*fakeStream{}}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	storagepb.RegisterBigQueryWriteServer(srv, f)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	f.addr = lis.Addr().String()
	f.rest = httptest.NewServer(http.HandlerFunc(f.serveREST))
	t.Cleanup(f.rest.Close)
	return f
}

// config is a sink config against the fake.
func (f *fakeBQ) config(table string, extra string) string {
	if !strings.Contains(extra, "retry:") {
		extra += "retry: {max_retries: 2, initial_backoff_ms: 1, max_backoff_ms: 5}\n"
	}
	return fmt.Sprintf("project_id: test-project\ndataset: ds\ntable: %s\napi_endpoint: %s/bigquery/v2/\nstorage_endpoint: %s\n%s", table, f.rest.URL, f.addr, extra)
}

// addTable creates a table with the REST schema given as JSON fields.
func (f *fakeBQ) addTable(name, fieldsJSON string) {
	var fields []*bqv2.TableFieldSchema
	if err := json.Unmarshal([]byte(fieldsJSON), &fields); err != nil {
		f.t.Fatal(err)
	}
	legacyNames(fields)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tables["projects/test-project/datasets/ds/tables/"+name] = &fakeTable{meta: &bqv2.Table{
		Type: "TABLE", TableReference: &bqv2.TableReference{ProjectId: "test-project", DatasetId: "ds", TableId: name},
		Schema: &bqv2.TableSchema{Fields: fields},
	}}
}

func (f *fakeBQ) rows(name string) []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.tables["projects/test-project/datasets/ds/tables/"+name]
	if t == nil {
		return nil
	}
	return append([]map[string]any(nil), t.rows...)
}

func (f *fakeBQ) serveREST(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/bigquery/v2/")
	parts := strings.Split(path, "/")
	fail := func(code int, reason, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": code, "message": msg, "errors": []any{map[string]any{"reason": reason, "message": msg}}}})
	}
	if len(parts) < 5 || parts[0] != "projects" || parts[2] != "datasets" || parts[4] != "tables" {
		fail(404, "notFound", "Not found: "+r.URL.Path)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	prefix := strings.Join(parts[:5], "/")
	switch {
	case r.Method == http.MethodGet && len(parts) == 6:
		t := f.tables[prefix+"/"+parts[5]]
		if t == nil {
			fail(404, "notFound", fmt.Sprintf("Not found: Table %s:%s.%s", parts[1], parts[3], parts[5]))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(t.meta)
	case r.Method == http.MethodPost && len(parts) == 5:
		var tb bqv2.Table
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &tb); err != nil || tb.TableReference == nil || tb.TableReference.TableId == "" {
			fail(400, "invalid", "Invalid table resource")
			return
		}
		key := prefix + "/" + tb.TableReference.TableId
		if f.tables[key] != nil {
			fail(409, "duplicate", "Already Exists: Table "+tb.TableReference.TableId)
			return
		}
		if tb.Schema == nil || len(tb.Schema.Fields) == 0 {
			fail(400, "invalid", "a table needs a schema here")
			return
		}
		tb.Type = "TABLE"
		legacyNames(tb.Schema.Fields)
		f.tables[key] = &fakeTable{meta: &tb}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(&tb)
	default:
		fail(400, "invalid", "unsupported request "+r.Method+" "+r.URL.Path)
	}
}

// legacyNames spells column types as tables.get returns them: the
// legacy names (INTEGER, FLOAT, BOOLEAN, RECORD) whichever was given.
func legacyNames(fields []*bqv2.TableFieldSchema) {
	for _, f := range fields {
		switch f.Type {
		case "INT64":
			f.Type = "INTEGER"
		case "FLOAT64":
			f.Type = "FLOAT"
		case "BOOL":
			f.Type = "BOOLEAN"
		case "STRUCT":
			f.Type = "RECORD"
		}
		legacyNames(f.Fields)
	}
}

func tableOfStream(name string) string {
	if i := strings.Index(name, "/streams/"); i >= 0 {
		return name[:i]
	}
	return name
}

func (f *fakeBQ) CreateWriteStream(ctx context.Context, req *storagepb.CreateWriteStreamRequest) (*storagepb.WriteStream, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.tables[req.GetParent()] == nil {
		return nil, status.Errorf(codes.NotFound, "Requested entity was not found. Entity: %s", req.GetParent())
	}
	typ := req.GetWriteStream().GetType()
	if typ != storagepb.WriteStream_COMMITTED {
		return nil, status.Errorf(codes.Unimplemented, "the fake has COMMITTED streams only")
	}
	f.n++
	s := &fakeStream{name: fmt.Sprintf("%s/streams/s%04d", req.GetParent(), f.n), table: req.GetParent(), typ: typ}
	f.streams[s.name] = s
	return &storagepb.WriteStream{Name: s.name, Type: typ, CreateTime: timestamppb.Now(), Location: "us"}, nil
}

func (f *fakeBQ) GetWriteStream(ctx context.Context, req *storagepb.GetWriteStreamRequest) (*storagepb.WriteStream, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name := req.GetName()
	if strings.HasSuffix(name, "/streams/_default") {
		if f.tables[tableOfStream(name)] == nil {
			return nil, status.Errorf(codes.NotFound, "Requested entity was not found. Entity: %s", name)
		}
		return &storagepb.WriteStream{Name: name, Type: storagepb.WriteStream_COMMITTED, Location: "us"}, nil
	}
	s := f.streams[name]
	if s == nil {
		return nil, status.Errorf(codes.NotFound, "Requested entity was not found. Entity: %s", name)
	}
	return &storagepb.WriteStream{Name: name, Type: s.typ, Location: "us"}, nil
}

func (f *fakeBQ) FinalizeWriteStream(ctx context.Context, req *storagepb.FinalizeWriteStreamRequest) (*storagepb.FinalizeWriteStreamResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.streams[req.GetName()]
	if s == nil {
		return nil, status.Errorf(codes.NotFound, "Requested entity was not found. Entity: %s", req.GetName())
	}
	s.finalized = true
	return &storagepb.FinalizeWriteStreamResponse{RowCount: s.length}, nil
}

// dropStream forgets a stream (the service garbage-collects unused ones).
func (f *fakeBQ) dropStream(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.streams, name)
}

func (f *fakeBQ) AppendRows(srv storagepb.BigQueryWrite_AppendRowsServer) error {
	var stream string
	var md protoreflect.MessageDescriptor
	for {
		req, err := srv.Recv()
		if err != nil {
			return nil
		}
		// The first request of a connection names the stream and has the
		// schema; later ones may repeat or change them.
		if req.GetWriteStream() != "" {
			stream = req.GetWriteStream()
		}
		if stream == "" {
			return status.Error(codes.InvalidArgument, "the first AppendRows request must name the write stream")
		}
		if dp := req.GetProtoRows().GetWriterSchema().GetProtoDescriptor(); dp != nil {
			if md, err = messageOf(dp); err != nil {
				return status.Errorf(codes.InvalidArgument, "Invalid proto schema: %v", err)
			}
		}
		if md == nil {
			return status.Error(codes.InvalidArgument, "no writer schema on this connection")
		}
		resp, brk := f.append(stream, md, req)
		if brk {
			return status.Error(codes.Unavailable, "connection reset (injected lost acknowledgement)")
		}
		if resp == nil {
			return status.Error(codes.Unavailable, "the service is unavailable (injected)")
		}
		resp.WriteStream = stream
		if err := srv.Send(resp); err != nil {
			return nil
		}
	}
}

func errResp(c codes.Code, code storagepb.StorageError_StorageErrorCode, msg string) *storagepb.AppendRowsResponse {
	st := status.New(c, msg)
	if code != 0 {
		st, _ = st.WithDetails(&storagepb.StorageError{Code: code, ErrorMessage: msg})
	}
	return &storagepb.AppendRowsResponse{Response: &storagepb.AppendRowsResponse_Error{Error: st.Proto()}}
}

// append applies one request; nil means a transport failure before
// anything was written, brk one after the rows were written.
func (f *fakeBQ) append(stream string, md protoreflect.MessageDescriptor, req *storagepb.AppendRowsRequest) (*storagepb.AppendRowsResponse, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.appends++
	if f.refuse > 0 {
		f.refuse--
		return nil, false
	}
	table := f.tables[tableOfStream(stream)]
	if table == nil {
		return errResp(codes.NotFound, storagepb.StorageError_TABLE_NOT_FOUND, "Table not found: "+tableOfStream(stream)), false
	}
	isDefault := strings.HasSuffix(stream, "/streams/_default")
	var s *fakeStream
	if !isDefault {
		if s = f.streams[stream]; s == nil {
			return errResp(codes.NotFound, storagepb.StorageError_STREAM_NOT_FOUND, "Stream not found: "+stream), false
		}
		if s.finalized {
			return errResp(codes.InvalidArgument, storagepb.StorageError_STREAM_FINALIZED, "Stream is finalized: "+stream), false
		}
	}
	rows := req.GetProtoRows().GetRows().GetSerializedRows()
	if len(rows) == 0 {
		return errResp(codes.InvalidArgument, 0, "an append needs rows"), false
	}
	if off := req.GetOffset(); off != nil {
		if isDefault {
			return errResp(codes.InvalidArgument, 0, "offsets are not supported on the _default stream"), false
		}
		switch o := off.GetValue(); {
		case o < s.length:
			return errResp(codes.AlreadyExists, storagepb.StorageError_OFFSET_ALREADY_EXISTS, fmt.Sprintf("The offset is within stream, expected offset %d, received %d", s.length, o)), false
		case o > s.length:
			return errResp(codes.OutOfRange, storagepb.StorageError_OFFSET_OUT_OF_RANGE, fmt.Sprintf("The offset is beyond stream, expected offset %d, received %d", s.length, o)), false
		}
	}
	decoded := make([]map[string]any, len(rows))
	var rowErrs []*storagepb.RowError
	for i, b := range rows {
		m := dynamicpb.NewMessage(md)
		if err := proto.Unmarshal(b, m); err != nil {
			rowErrs = append(rowErrs, &storagepb.RowError{Index: int64(i), Code: storagepb.RowError_FIELDS_ERROR, Message: "cannot decode: " + err.Error()})
			continue
		}
		v, err := decodeRow(m, table.meta.Schema.Fields)
		if err != nil {
			rowErrs = append(rowErrs, &storagepb.RowError{Index: int64(i), Code: storagepb.RowError_FIELDS_ERROR, Message: err.Error()})
			continue
		}
		decoded[i] = v
	}
	if rowErrs != nil {
		r := errResp(codes.InvalidArgument, 0, "Errors found while processing rows.")
		r.RowErrors = rowErrs
		return r, false
	}
	start := int64(0)
	if s != nil {
		start = s.length
		s.length += int64(len(rows))
	}
	table.rows = append(table.rows, decoded...)
	if f.loseAcks > 0 {
		f.loseAcks--
		return nil, true
	}
	res := &storagepb.AppendRowsResponse_AppendResult{}
	if s != nil {
		res.Offset = wrapperspb.Int64(start)
	}
	resp := &storagepb.AppendRowsResponse{Response: &storagepb.AppendRowsResponse_AppendResult_{AppendResult: res}}
	if cols := table.meta.Schema.Fields; len(cols) > md.Fields().Len() {
		// The table has columns the writer schema lacks: the service
		// tells the client the table's schema (updated_schema).
		us := &storagepb.TableSchema{}
		for _, c := range cols {
			us.Fields = append(us.Fields, &storagepb.TableFieldSchema{Name: c.Name, Type: storagepb.TableFieldSchema_Type(storagepb.TableFieldSchema_Type_value[c.Type])})
		}
		resp.UpdatedSchema = us
	}
	return resp, false
}

// messageOf builds the message the client described (a self-contained
// DescriptorProto: nested types inside it).
func messageOf(dp *descriptorpb.DescriptorProto) (protoreflect.MessageDescriptor, error) {
	fdp := &descriptorpb.FileDescriptorProto{
		Name:        proto.String("fake_writer_schema.proto"),
		Syntax:      proto.String("proto2"),
		MessageType: []*descriptorpb.DescriptorProto{dp},
	}
	fd, err := protodesc.NewFile(fdp, nil)
	if err != nil {
		return nil, err
	}
	return fd.Messages().Get(0), nil
}

// accepted are the proto types the documentation accepts per column type
// ("Supported protocol buffer data types").
var accepted = map[string][]protoreflect.Kind{
	"STRING":     {protoreflect.StringKind},
	"JSON":       {protoreflect.StringKind},
	"GEOGRAPHY":  {protoreflect.StringKind},
	"INTEGER":    {protoreflect.Int64Kind, protoreflect.Int32Kind},
	"INT64":      {protoreflect.Int64Kind, protoreflect.Int32Kind},
	"FLOAT":      {protoreflect.DoubleKind, protoreflect.FloatKind},
	"FLOAT64":    {protoreflect.DoubleKind, protoreflect.FloatKind},
	"BOOLEAN":    {protoreflect.BoolKind},
	"BOOL":       {protoreflect.BoolKind},
	"BYTES":      {protoreflect.BytesKind},
	"TIMESTAMP":  {protoreflect.Int64Kind},
	"DATE":       {protoreflect.Int32Kind},
	"DATETIME":   {protoreflect.Int64Kind, protoreflect.StringKind},
	"TIME":       {protoreflect.Int64Kind, protoreflect.StringKind},
	"NUMERIC":    {protoreflect.BytesKind, protoreflect.StringKind},
	"BIGNUMERIC": {protoreflect.BytesKind, protoreflect.StringKind},
	"RECORD":     {protoreflect.MessageKind},
	"STRUCT":     {protoreflect.MessageKind},
}

// decodeRow reads a message against the table's columns.
func decodeRow(m protoreflect.Message, cols []*bqv2.TableFieldSchema) (map[string]any, error) {
	out := map[string]any{}
	fields := m.Descriptor().Fields()
	byName := map[string]*bqv2.TableFieldSchema{}
	for _, c := range cols {
		byName[strings.ToLower(c.Name)] = c
	}
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		col := byName[strings.ToLower(string(fd.Name()))]
		if col == nil {
			return nil, fmt.Errorf("the schema has field %s, the table has no such column", fd.Name())
		}
		ok := false
		for _, k := range accepted[col.Type] {
			ok = ok || k == fd.Kind()
		}
		if !ok {
			return nil, fmt.Errorf("field %s: proto %s does not fit column type %s", fd.Name(), fd.Kind(), col.Type)
		}
		if (col.Mode == "REPEATED") != fd.IsList() {
			return nil, fmt.Errorf("field %s: repeated does not match the column mode %q", fd.Name(), col.Mode)
		}
		if !m.Has(fd) {
			if col.Mode == "REQUIRED" {
				return nil, fmt.Errorf("field %s: the REQUIRED column has no value", fd.Name())
			}
			continue
		}
		if fd.IsList() {
			l := m.Get(fd).List()
			arr := make([]any, l.Len())
			for j := range arr {
				v, err := decodeValue(l.Get(j), fd, col)
				if err != nil {
					return nil, err
				}
				arr[j] = v
			}
			out[col.Name] = arr
			continue
		}
		v, err := decodeValue(m.Get(fd), fd, col)
		if err != nil {
			return nil, err
		}
		out[col.Name] = v
	}
	for _, c := range cols {
		if c.Mode == "REQUIRED" && out[c.Name] == nil {
			return nil, fmt.Errorf("the REQUIRED column %s has no value", c.Name)
		}
	}
	return out, nil
}

func decodeValue(v protoreflect.Value, fd protoreflect.FieldDescriptor, col *bqv2.TableFieldSchema) (any, error) {
	switch col.Type {
	case "RECORD", "STRUCT":
		return decodeRow(v.Message(), col.Fields)
	case "TIMESTAMP":
		return time.UnixMicro(v.Int()).UTC().Format(time.RFC3339Nano), nil
	case "DATE":
		return time.Unix(int64(v.Int())*86400, 0).UTC().Format("2006-01-02"), nil
	case "DATETIME":
		if fd.Kind() == protoreflect.StringKind {
			return v.String(), nil
		}
		p := v.Int()
		us, secs := p&(1<<20-1), p>>20
		return fmt.Sprintf("%04d-%02d-%02dT%02d:%02d:%02d.%06d", secs>>26, secs>>22&0xf, secs>>17&0x1f, secs>>12&0x1f, secs>>6&0x3f, secs&0x3f, us), nil
	case "TIME":
		if fd.Kind() == protoreflect.StringKind {
			return v.String(), nil
		}
		p := v.Int()
		us, secs := p&(1<<20-1), p>>20
		return fmt.Sprintf("%02d:%02d:%02d.%06d", secs>>12&0x1f, secs>>6&0x3f, secs&0x3f, us), nil
	case "NUMERIC", "BIGNUMERIC":
		if fd.Kind() == protoreflect.StringKind {
			return v.String(), nil
		}
		scale := 9
		if col.Type == "BIGNUMERIC" {
			scale = 38
		}
		return decimalFromLE(v.Bytes(), scale), nil
	case "BYTES":
		return base64.StdEncoding.EncodeToString(v.Bytes()), nil
	case "JSON":
		if !json.Valid([]byte(v.String())) {
			return nil, fmt.Errorf("field %s: not valid JSON", fd.Name())
		}
		return v.String(), nil
	}
	return v.Interface(), nil
}

// decimalFromLE reads a little-endian two's complement integer scaled by
// 10^scale as a decimal string without trailing zeros.
func decimalFromLE(b []byte, scale int) string {
	be := make([]byte, len(b))
	for i := range b {
		be[len(b)-1-i] = b[i]
	}
	n := new(big.Int).SetBytes(be)
	if len(be) > 0 && be[0]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(be))))
	}
	r := new(big.Rat).SetFrac(n, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil))
	s := r.FloatString(scale)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}
