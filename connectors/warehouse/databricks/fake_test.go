package databricks

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/rivven/rivven-connect/connectors/warehouse/databricks/zerobuspb"
)

// fakeDatabricks is a workspace as the sink sees it, built from
// Databricks' documentation: the OAuth token endpoint (client
// credentials, the client's id and secret in HTTP Basic auth, scope
// all-apis, and for Zerobus the resource and authorization_details), the
// Unity Catalog tables API, and the Zerobus service (the generated gRPC
// server of the same proto) that checks each stream's bearer token,
// creates streams, reads JSON or protobuf records (protobuf through
// dynamicpb with the descriptor the stream was created with, an
// independent reader) and acknowledges offsets.
type fakeDatabricks struct {
	pb.UnimplementedZerobusServer
	t            testing.TB
	clientID     string
	clientSecret string
	workspaceID  string

	http     *httptest.Server
	grpc     *grpc.Server
	endpoint string

	mu      sync.Mutex
	tables  map[string][]ucColumn
	rows    map[string][]map[string]any // durable (acknowledged) rows per table
	tokens  map[string]string           // token -> "" (workspace API) or the table it may ingest into
	minted  int
	streams int
	batches int // batches received, all streams
	offsets [][]int64

	// Behaviours the tests switch on.
	failStream    func(stream, batch int) bool // fail the stream on receiving this batch (before acking it)
	failAfterAck  func(stream, batch int) bool // fail the stream right after acking this batch
	loseAck       func(stream, batch int) bool // make this batch durable, then fail the stream without its ack
	noAck         func(stream int) bool        // never acknowledge on this stream
	closeSignal   func(stream, batch int) bool // send a close-stream signal before acking this batch
	ackGate       chan struct{}                // when set, each ack waits for a value from it
	received      chan int64                   // when set, gets each received offset
	rejectOpen    codes.Code                   // answer create_stream with this status
	rejectOpenFor int                          // ... for this many opens
}

func newFakeDatabricks(t testing.TB) *fakeDatabricks {
	f := &fakeDatabricks{t: t, clientID: "sp-client-id", clientSecret: "sp-secret-value", workspaceID: "1234567890123456",
		tables: map[string][]ucColumn{}, rows: map[string][]map[string]any{}, tokens: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oidc/v1/token", f.token)
	mux.HandleFunc("GET /api/2.1/unity-catalog/tables/{name}", f.table)
	f.http = httptest.NewServer(mux)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.grpc = grpc.NewServer()
	pb.RegisterZerobusServer(f.grpc, f)
	go func() { _ = f.grpc.Serve(lis) }()
	f.endpoint = "http://" + lis.Addr().String()
	t.Cleanup(func() {
		f.grpc.Stop()
		f.http.Close()
	})
	return f
}

func (f *fakeDatabricks) addTable(name string, cols ...ucColumn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range cols {
		cols[i].Position = int32(i)
	}
	f.tables[name] = cols
}

func col(name, typeName, typeText string, nullable bool) ucColumn {
	return ucColumn{Name: name, TypeName: typeName, TypeText: typeText, Nullable: &nullable}
}

func (f *fakeDatabricks) tableRows(name string) []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.rows[name])
}

func (f *fakeDatabricks) revokeTokens() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens = map[string]string{}
}

func oauthError(w http.ResponseWriter, code int, errCode, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": errCode, "error_description": desc})
}

// token is the workspace's OAuth token endpoint (client credentials).
func (f *fakeDatabricks) token(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	if !ok || id != f.clientID || secret != f.clientSecret {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "Client authentication failed")
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		oauthError(w, http.StatusBadRequest, "invalid_request", "content type "+ct)
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	if r.PostForm.Get("client_secret") != "" {
		f.t.Errorf("the client secret was sent in the body as well as in Basic auth")
	}
	if g := r.PostForm.Get("grant_type"); g != "client_credentials" {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", g)
		return
	}
	if s := r.PostForm.Get("scope"); s != "all-apis" {
		oauthError(w, http.StatusBadRequest, "invalid_scope", s)
		return
	}
	table := ""
	if res := r.PostForm.Get("resource"); res != "" {
		if want := "api://databricks/workspaces/" + f.workspaceID + "/zerobusDirectWriteApi"; res != want {
			oauthError(w, http.StatusBadRequest, "invalid_target", res)
			return
		}
		var details []struct {
			Type           string   `json:"type"`
			Privileges     []string `json:"privileges"`
			ObjectType     string   `json:"object_type"`
			ObjectFullPath string   `json:"object_full_path"`
			Operations     []string `json:"operations"`
		}
		if err := json.Unmarshal([]byte(r.PostForm.Get("authorization_details")), &details); err != nil {
			oauthError(w, http.StatusBadRequest, "invalid_authorization_details", err.Error())
			return
		}
		need := map[string]bool{"CATALOG": false, "SCHEMA": false, "TABLE": false}
		for _, d := range details {
			if d.Type != "unity_catalog_privileges" {
				continue
			}
			switch d.ObjectType {
			case "CATALOG":
				need["CATALOG"] = slices.Contains(d.Privileges, "USE CATALOG")
			case "SCHEMA":
				need["SCHEMA"] = slices.Contains(d.Privileges, "USE SCHEMA")
			case "TABLE":
				table = d.ObjectFullPath
				need["TABLE"] = slices.Contains(d.Privileges, "SELECT") && slices.Contains(d.Privileges, "MODIFY") && slices.Contains(d.Operations, "zerobuswrite")
			}
		}
		for k, v := range need {
			if !v {
				oauthError(w, http.StatusBadRequest, "invalid_authorization_details", "missing "+k+" privileges")
				return
			}
		}
	}
	f.mu.Lock()
	f.minted++
	tok := fmt.Sprintf("dapi-fake-%d", f.minted)
	f.tokens[tok] = table
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600, "scope": "all-apis"})
}

// table is the Unity Catalog tables API.
func (f *fakeDatabricks) table(w http.ResponseWriter, r *http.Request) {
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	_, ok := f.tokens[tok]
	cols, found := f.tables[r.PathValue("name")]
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error_code":"UNAUTHENTICATED","message":"Invalid access token."}`)
		return
	}
	if !found {
		w.WriteHeader(http.StatusNotFound)
		_, _ = fmt.Fprintf(w, `{"error_code":"TABLE_DOES_NOT_EXIST","message":"Table '%s' does not exist."}`, r.PathValue("name"))
		return
	}
	parts := strings.Split(r.PathValue("name"), ".")
	_ = json.NewEncoder(w).Encode(map[string]any{"name": parts[2], "catalog_name": parts[0], "schema_name": parts[1],
		"full_name": r.PathValue("name"), "table_type": "MANAGED", "data_source_format": "DELTA", "columns": cols})
}

// EphemeralStream is the Zerobus service.
func (f *fakeDatabricks) EphemeralStream(s pb.Zerobus_EphemeralStreamServer) error {
	md, _ := metadata.FromIncomingContext(s.Context())
	auth, table := first(md.Get("authorization")), first(md.Get("x-databricks-zerobus-table-name"))
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	f.mu.Lock()
	granted, known := f.tokens[tok]
	f.streams++
	stream := f.streams
	reject := codes.OK
	if f.rejectOpenFor > 0 {
		reject = f.rejectOpen
		f.rejectOpenFor--
	}
	f.offsets = append(f.offsets, nil)
	f.mu.Unlock()
	if !ok || !known || granted == "" {
		return status.Error(codes.Unauthenticated, "invalid or missing bearer token")
	}
	if granted != table {
		return status.Errorf(codes.PermissionDenied, "the token is not authorized for table %s", table)
	}
	req, err := s.Recv()
	if err != nil {
		return err
	}
	cr := req.GetCreateStream()
	if cr == nil {
		return status.Error(codes.InvalidArgument, "the first message must be create_stream")
	}
	if reject != codes.OK {
		return status.Error(reject, "injected")
	}
	if cr.GetTableName() != table {
		return status.Errorf(codes.InvalidArgument, "create_stream table %q differs from the header's %q", cr.GetTableName(), table)
	}
	f.mu.Lock()
	cols, exists := f.tables[table]
	f.mu.Unlock()
	if !exists {
		return status.Errorf(codes.NotFound, "table %s does not exist", table)
	}
	var msg protoreflect.MessageDescriptor
	switch cr.GetRecordType() {
	case pb.RecordType_JSON:
	case pb.RecordType_PROTO:
		var d descriptorpb.DescriptorProto
		if err := proto.Unmarshal(cr.GetDescriptorProto(), &d); err != nil {
			return status.Errorf(codes.InvalidArgument, "descriptor_proto: %v", err)
		}
		fd, err := protodesc.NewFile(&descriptorpb.FileDescriptorProto{Name: proto.String("record.proto"), Syntax: proto.String("proto2"),
			MessageType: []*descriptorpb.DescriptorProto{&d}}, nil)
		if err != nil {
			return status.Errorf(codes.InvalidArgument, "descriptor_proto: %v", err)
		}
		msg = fd.Messages().Get(0)
		for i := 0; i < msg.Fields().Len(); i++ {
			fl := msg.Fields().Get(i)
			if !slices.ContainsFunc(cols, func(c ucColumn) bool { return c.Name == string(fl.Name()) }) {
				return status.Errorf(codes.InvalidArgument, "descriptor field %s is not a column of %s", fl.Name(), table)
			}
		}
	default:
		return status.Errorf(codes.InvalidArgument, "unsupported record type %v", cr.GetRecordType())
	}
	id := fmt.Sprintf("stream-%d", stream)
	if err := s.Send(&pb.EphemeralStreamResponse{Payload: &pb.EphemeralStreamResponse_CreateStreamResponse{
		CreateStreamResponse: &pb.CreateIngestStreamResponse{StreamId: &id}}}); err != nil {
		return err
	}
	var next int64
	batch := 0
	for {
		req, err := s.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		b := req.GetIngestRecordBatch()
		if b == nil {
			return status.Error(codes.InvalidArgument, "expected ingest_record_batch")
		}
		if b.GetOffsetId() != next {
			return status.Errorf(codes.InvalidArgument, "offset %d, expected %d", b.GetOffsetId(), next)
		}
		next++
		batch++
		f.mu.Lock()
		f.batches++
		f.offsets[stream-1] = append(f.offsets[stream-1], b.GetOffsetId())
		failNow := f.failStream != nil && f.failStream(stream, batch)
		failAfter := f.failAfterAck != nil && f.failAfterAck(stream, batch)
		lose := f.loseAck != nil && f.loseAck(stream, batch)
		noAck := f.noAck != nil && f.noAck(stream)
		closeSig := f.closeSignal != nil && f.closeSignal(stream, batch)
		gate, received := f.ackGate, f.received
		f.mu.Unlock()
		if received != nil {
			received <- b.GetOffsetId()
		}
		if failNow {
			return status.Error(codes.Unavailable, "injected stream failure")
		}
		rows, err := f.decode(b, cols, msg)
		if err != nil {
			return status.Errorf(codes.InvalidArgument, "offset %d: %v", b.GetOffsetId(), err)
		}
		if noAck {
			continue
		}
		if gate != nil {
			select {
			case <-gate:
			case <-s.Context().Done():
				return s.Context().Err()
			}
		}
		if closeSig {
			if err := s.Send(&pb.EphemeralStreamResponse{Payload: &pb.EphemeralStreamResponse_CloseStreamSignal{
				CloseStreamSignal: &pb.CloseStreamSignal{Duration: durationpb.New(30 * time.Second)}}}); err != nil {
				return err
			}
		}
		f.mu.Lock()
		f.rows[table] = append(f.rows[table], rows...)
		f.mu.Unlock()
		if lose {
			return status.Error(codes.Unavailable, "injected failure before the ack")
		}
		off := b.GetOffsetId()
		if err := s.Send(&pb.EphemeralStreamResponse{Payload: &pb.EphemeralStreamResponse_IngestRecordResponse{
			IngestRecordResponse: &pb.IngestRecordResponse{DurabilityAckUpToOffset: &off}}}); err != nil {
			return err
		}
		if failAfter {
			return status.Error(codes.Unavailable, "injected failure after the ack")
		}
	}
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// decode reads a batch's records as the service would: JSON objects
// whose keys are columns, or protobuf messages of the stream's
// descriptor with every required field set.
func (f *fakeDatabricks) decode(b *pb.IngestRecordBatchRequest, cols []ucColumn, msg protoreflect.MessageDescriptor) ([]map[string]any, error) {
	var out []map[string]any
	if jb := b.GetJsonBatch(); jb != nil {
		if msg != nil {
			return nil, fmt.Errorf("json batch on a proto stream")
		}
		for i, r := range jb.GetRecords() {
			var row map[string]any
			d := json.NewDecoder(strings.NewReader(r))
			d.UseNumber()
			if err := d.Decode(&row); err != nil {
				return nil, fmt.Errorf("record %d: %v", i, err)
			}
			for k := range row {
				if !slices.ContainsFunc(cols, func(c ucColumn) bool { return c.Name == k }) {
					return nil, fmt.Errorf("record %d: %s is not a column", i, k)
				}
			}
			for _, c := range cols {
				if _, ok := row[c.Name]; !ok && c.Nullable != nil && !*c.Nullable {
					return nil, fmt.Errorf("record %d: NOT NULL column %s missing", i, c.Name)
				}
			}
			out = append(out, row)
		}
		return out, nil
	}
	pbatch := b.GetProtoEncodedBatch()
	if pbatch == nil || msg == nil {
		return nil, fmt.Errorf("proto batch on a json stream, or no batch")
	}
	for i, r := range pbatch.GetRecords() {
		m := dynamicpb.NewMessage(msg)
		if err := proto.Unmarshal(r, m); err != nil {
			return nil, fmt.Errorf("record %d: %v", i, err)
		}
		if len(m.GetUnknown()) > 0 {
			return nil, fmt.Errorf("record %d: unknown fields", i)
		}
		js, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("record %d: %v", i, err)
		}
		var row map[string]any
		d := json.NewDecoder(strings.NewReader(string(js)))
		d.UseNumber()
		if err := d.Decode(&row); err != nil {
			return nil, err
		}
		out = append(out, row)
	}
	return out, nil
}

// config is a sink config for the fake: the endpoint as an AWS
// workspace's (its workspace id goes into the token's audience), which
// options() resolves to the fake.
func (f *fakeDatabricks) config(table string, extra string) string {
	return fmt.Sprintf("endpoint: %s.zerobus.us-west-2.cloud.databricks.com\nunity_catalog_url: %q\ntable_name: %s\nclient_id: %s\nclient_secret: %s\n%s",
		f.workspaceID, f.http.URL, table, f.clientID, f.clientSecret, extra)
}

// options make the endpoint's name resolve to the fake, in plaintext.
func (f *fakeDatabricks) options() []Option {
	r := manual.NewBuilderWithScheme("dns")
	r.InitialState(resolver.State{Addresses: []resolver.Address{{Addr: strings.TrimPrefix(f.endpoint, "http://")}}})
	return []Option{WithDialOptions(grpc.WithResolvers(r), grpc.WithTransportCredentials(insecure.NewCredentials()))}
}
