// Package pineconefake is an in-process Pinecone: the data plane's gRPC
// VectorService (Upsert, Delete, DescribeIndexStats) served from the
// service descriptor go-pinecone's generated code registers (the
// generated package itself is internal to go-pinecone, so requests and
// answers are dynamic messages of exactly its types), and the control
// plane's describe_index over HTTP. It checks what Pinecone checks: the
// api-key, at most 1000 vectors per upsert, IDs of 1-512 characters, the
// index's dimension, sparse indices and values of one length, metadata of
// at most 40 KB per vector; and keeps vectors per namespace in memory. It
// is test support, linked by tests only.
package pineconefake

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"

	_ "github.com/pinecone-io/go-pinecone/v5/pinecone" // registers VectorService
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/structpb"
)

//go:embed testdata/describe-index.json
var describeIndex []byte

// Vector is a stored vector.
type Vector struct {
	ID            string
	Values        []float32
	SparseIndices []uint32
	SparseValues  []float32
	Metadata      map[string]any
}

// Server is the fake: Index (the data plane) and Control (the control
// plane).
type Server struct {
	APIKey    string
	IndexName string
	Dimension int
	// Fault, when set, may fail the n-th call (1-based) of a method.
	Fault func(method string, n int64) error

	grpc    *grpc.Server
	addr    string
	Control *httptest.Server
	svc     protoreflect.ServiceDescriptor

	mu    sync.Mutex
	ns    map[string]map[string]*Vector
	calls map[string]int64

	Upserts atomic.Int64
}

// Start serves an index of the given name and dimension.
func Start(apiKey, indexName string, dim int) (*Server, error) {
	d, err := protoregistry.GlobalFiles.FindDescriptorByName("VectorService")
	if err != nil {
		return nil, fmt.Errorf("go-pinecone's VectorService is not registered: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{APIKey: apiKey, IndexName: indexName, Dimension: dim, addr: ln.Addr().String(),
		svc: d.(protoreflect.ServiceDescriptor), ns: map[string]map[string]*Vector{}, calls: map[string]int64{}}
	s.grpc = grpc.NewServer(grpc.UnknownServiceHandler(s.handle))
	go func() { _ = s.grpc.Serve(ln) }()
	s.Control = httptest.NewServer(http.HandlerFunc(s.control))
	return s, nil
}

// Host is the data plane's URL (http: no TLS).
func (s *Server) Host() string { return "http://" + s.addr }

// Close stops both planes.
func (s *Server) Close() { s.grpc.Stop(); s.Control.Close() }

// Calls is how many calls of a method arrived.
func (s *Server) Calls(method string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

// Vectors returns the vectors of a namespace ("" = __default__).
func (s *Server) Vectors(namespace string) map[string]Vector {
	if namespace == "" {
		namespace = "__default__"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]Vector{}
	for id, v := range s.ns[namespace] {
		out[id] = *v
	}
	return out
}

func (s *Server) control(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Api-Key") != s.APIKey {
		http.Error(w, `{"error":{"code":"UNAUTHENTICATED","message":"Invalid API Key"},"status":401}`, http.StatusUnauthorized)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, "/indexes/")
	if r.Method != http.MethodGet || !ok {
		http.Error(w, `{"error":{"code":"NOT_FOUND","message":"Not found"},"status":404}`, http.StatusNotFound)
		return
	}
	if name != s.IndexName {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"error":{"code":"NOT_FOUND","message":"Resource %s not found"},"status":404}`, name)
		return
	}
	var m map[string]any
	_ = json.Unmarshal(describeIndex, &m)
	m["name"], m["dimension"], m["host"] = name, s.Dimension, s.Host()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(m)
}

func (s *Server) handle(_ any, stream grpc.ServerStream) error {
	full, _ := grpc.MethodFromServerStream(stream)
	svc, method, _ := strings.Cut(strings.TrimPrefix(full, "/"), "/")
	md := s.svc.Methods().ByName(protoreflect.Name(method))
	if svc != "VectorService" || md == nil {
		return status.Errorf(codes.Unimplemented, "unknown method %s", full)
	}
	meta, _ := metadata.FromIncomingContext(stream.Context())
	if k := meta.Get("api-key"); len(k) != 1 || k[0] != s.APIKey {
		return status.Error(codes.Unauthenticated, "Invalid API Key")
	}
	s.mu.Lock()
	s.calls[method]++
	n := s.calls[method]
	s.mu.Unlock()
	if s.Fault != nil {
		if err := s.Fault(method, n); err != nil {
			return err
		}
	}
	in := dynamicpb.NewMessage(md.Input())
	if err := stream.RecvMsg(in); err != nil {
		return err
	}
	out := dynamicpb.NewMessage(md.Output())
	var err error
	switch method {
	case "Upsert":
		err = s.upsert(in, out)
	case "Delete":
		err = s.delete(in)
	case "DescribeIndexStats":
		s.stats(out)
	default:
		return status.Errorf(codes.Unimplemented, "this fake does not serve %s", method)
	}
	if err != nil {
		return err
	}
	return stream.SendMsg(out)
}

func field(m protoreflect.Message, name string) protoreflect.Value {
	return m.Get(m.Descriptor().Fields().ByName(protoreflect.Name(name)))
}

func namespaceOf(m protoreflect.Message) string {
	ns := field(m, "namespace").String()
	if ns == "" {
		return "__default__"
	}
	return ns
}

func (s *Server) upsert(in, out protoreflect.Message) error {
	list := field(in, "vectors").List()
	if list.Len() > 1000 {
		return status.Errorf(codes.InvalidArgument, "Invalid request: upsert accepts at most 1000 vectors, got %d", list.Len())
	}
	staged := make([]*Vector, 0, list.Len())
	for i := range list.Len() {
		pv := list.Get(i).Message()
		v := &Vector{ID: field(pv, "id").String()}
		if v.ID == "" || len(v.ID) > 512 {
			return status.Errorf(codes.InvalidArgument, "Invalid request: vector id must be 1 to 512 characters, got %d", len(v.ID))
		}
		vals := field(pv, "values").List()
		for j := range vals.Len() {
			v.Values = append(v.Values, float32(vals.Get(j).Float()))
		}
		if len(v.Values) != s.Dimension {
			return status.Errorf(codes.InvalidArgument, "Vector dimension %d does not match the dimension of the index %d", len(v.Values), s.Dimension)
		}
		if sv := field(pv, "sparse_values").Message(); sv.IsValid() {
			idx, svals := field(sv, "indices").List(), field(sv, "values").List()
			if idx.Len() != svals.Len() {
				return status.Error(codes.InvalidArgument, "Sparse vector indices and values must have the same length")
			}
			for j := range idx.Len() {
				v.SparseIndices = append(v.SparseIndices, uint32(idx.Get(j).Uint()))
				v.SparseValues = append(v.SparseValues, float32(svals.Get(j).Float()))
			}
		}
		if mdv := field(pv, "metadata").Message(); mdv.IsValid() {
			b, err := proto.Marshal(mdv.Interface())
			if err != nil {
				return status.Error(codes.Internal, err.Error())
			}
			if len(b) > 40*1024 {
				return status.Errorf(codes.InvalidArgument, "Metadata size is %d bytes, which exceeds the limit of 40960 bytes per vector", len(b))
			}
			var st structpb.Struct
			if err := proto.Unmarshal(b, &st); err != nil {
				return status.Error(codes.InvalidArgument, err.Error())
			}
			v.Metadata = st.AsMap()
		}
		staged = append(staged, v)
	}
	ns := namespaceOf(in)
	s.mu.Lock()
	if s.ns[ns] == nil {
		s.ns[ns] = map[string]*Vector{}
	}
	for _, v := range staged {
		s.ns[ns][v.ID] = v
	}
	s.mu.Unlock()
	s.Upserts.Add(1)
	out.Set(out.Descriptor().Fields().ByName("upserted_count"), protoreflect.ValueOfUint32(uint32(len(staged))))
	return nil
}

func (s *Server) delete(in protoreflect.Message) error {
	ids := field(in, "ids").List()
	ns := namespaceOf(in)
	s.mu.Lock()
	defer s.mu.Unlock()
	if field(in, "delete_all").Bool() {
		delete(s.ns, ns)
		return nil
	}
	if ids.Len() > 1000 {
		return status.Error(codes.InvalidArgument, "Invalid request: delete accepts at most 1000 ids")
	}
	for i := range ids.Len() {
		delete(s.ns[ns], ids.Get(i).String())
	}
	return nil
}

func (s *Server) stats(out protoreflect.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fd := out.Descriptor().Fields()
	out.Set(fd.ByName("dimension"), protoreflect.ValueOfUint32(uint32(s.Dimension)))
	total := 0
	nsMap := out.Mutable(fd.ByName("namespaces")).Map()
	for name, vs := range s.ns {
		sum := nsMap.NewValue()
		sum.Message().Set(sum.Message().Descriptor().Fields().ByName("vector_count"), protoreflect.ValueOfUint32(uint32(len(vs))))
		nsMap.Set(protoreflect.ValueOfString(name).MapKey(), sum)
		total += len(vs)
	}
	out.Set(fd.ByName("total_vector_count"), protoreflect.ValueOfUint32(uint32(total)))
}
