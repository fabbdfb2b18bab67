// Package qdrantfake is an in-process Qdrant gRPC server built from the
// go-client's own generated service definitions (Qdrant, Collections,
// Points), for tests of the qdrant sink and of pipelines writing to it.
// It checks requests the way Qdrant does — the api-key header, that the
// collection exists, UUID and numeric point IDs, dense vector dimensions,
// named and sparse vectors — and keeps points in memory. It is test
// support, linked by tests only.
package qdrantfake

import (
	"context"
	"fmt"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Point is a stored point.
type Point struct {
	ID      string // the number, or the UUID in canonical form
	Vectors map[string][]float32
	Sparse  map[string]SparseVector
	Payload map[string]any
}

// SparseVector is a stored sparse vector.
type SparseVector struct {
	Indices []uint32
	Values  []float32
}

type collection struct {
	dense  map[string]*qdrant.VectorParams // "" = the unnamed vector
	sparse map[string]bool
	points map[string]*Point
}

// Server is the fake.
type Server struct {
	// APIKey, when set, must come in the api-key header.
	APIKey string
	// Fault, when set, may fail the n-th call (1-based) of a method
	// ("Upsert", "Delete", "Create", ...) with the returned error.
	Fault func(method string, n int64) error

	srv   *grpc.Server
	addr  string
	mu    sync.Mutex
	colls map[string]*collection
	calls map[string]*atomic.Int64

	Upserts atomic.Int64 // upsert requests accepted
	Waited  atomic.Int64 // upsert requests with wait = true

	qdrant.UnimplementedQdrantServer
	points      pointsServer
	collections collectionsServer
}

type pointsServer struct {
	qdrant.UnimplementedPointsServer
	s *Server
}

type collectionsServer struct {
	qdrant.UnimplementedCollectionsServer
	s *Server
}

// Start listens on a free local port.
func Start() (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{addr: ln.Addr().String(), colls: map[string]*collection{}, calls: map[string]*atomic.Int64{}}
	s.points.s, s.collections.s = s, s
	// Qdrant accepts the go-client's keepalive pings (every 10 s, also
	// without calls in flight); gRPC's default policy would answer them
	// with GOAWAY too_many_pings.
	s.srv = grpc.NewServer(grpc.UnaryInterceptor(s.intercept),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}))
	qdrant.RegisterQdrantServer(s.srv, s)
	qdrant.RegisterPointsServer(s.srv, &s.points)
	qdrant.RegisterCollectionsServer(s.srv, &s.collections)
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// URL is what a pipeline's url should say.
func (s *Server) URL() string { return "http://" + s.addr }

// Close stops the server.
func (s *Server) Close() { s.srv.Stop() }

// Calls is how many calls of a method arrived.
func (s *Server) Calls(method string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.calls[method]; ok {
		return c.Load()
	}
	return 0
}

func (s *Server) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if s.APIKey != "" {
		md, _ := metadata.FromIncomingContext(ctx)
		if k := md.Get("api-key"); len(k) != 1 || k[0] != s.APIKey {
			return nil, status.Error(codes.Unauthenticated, "Must provide an API key or an Authorization bearer token")
		}
	}
	method := info.FullMethod[len(info.FullMethod)-len(lastSeg(info.FullMethod)):]
	s.mu.Lock()
	c, ok := s.calls[method]
	if !ok {
		c = &atomic.Int64{}
		s.calls[method] = c
	}
	s.mu.Unlock()
	n := c.Add(1)
	if s.Fault != nil {
		if err := s.Fault(method, n); err != nil {
			return nil, err
		}
	}
	return h(ctx, req)
}

func lastSeg(m string) string {
	for i := len(m) - 1; i >= 0; i-- {
		if m[i] == '/' {
			return m[i+1:]
		}
	}
	return m
}

// CreateCollection makes a collection with an unnamed vector of dim
// dimensions (test setup without the sink).
func (s *Server) CreateCollection(name string, dim uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.colls[name] = &collection{dense: map[string]*qdrant.VectorParams{"": {Size: dim, Distance: qdrant.Distance_Cosine}}, sparse: map[string]bool{}, points: map[string]*Point{}}
}

// Points returns a collection's points sorted by ID.
func (s *Server) Points(name string) []Point {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.colls[name]
	if !ok {
		return nil
	}
	out := make([]Point, 0, len(c.points))
	for _, p := range c.points {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Distance is the distance a collection was created with.
func (s *Server) Distance(name string) qdrant.Distance {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.colls[name].dense {
		return p.Distance
	}
	return qdrant.Distance_UnknownDistance
}

func (s *Server) HealthCheck(context.Context, *qdrant.HealthCheckRequest) (*qdrant.HealthCheckReply, error) {
	v := "1.17.0"
	return &qdrant.HealthCheckReply{Title: "qdrant - vector search engine", Version: v}, nil
}

func notFound(name string) error {
	return status.Errorf(codes.NotFound, "Not found: Collection `%s` doesn't exist!", name)
}

func (c *collectionsServer) CollectionExists(_ context.Context, r *qdrant.CollectionExistsRequest) (*qdrant.CollectionExistsResponse, error) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	_, ok := c.s.colls[r.GetCollectionName()]
	return &qdrant.CollectionExistsResponse{Result: &qdrant.CollectionExists{Exists: ok}}, nil
}

func (c *collectionsServer) Get(_ context.Context, r *qdrant.GetCollectionInfoRequest) (*qdrant.GetCollectionInfoResponse, error) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	col, ok := c.s.colls[r.GetCollectionName()]
	if !ok {
		return nil, notFound(r.GetCollectionName())
	}
	params := &qdrant.CollectionParams{}
	if p, ok := col.dense[""]; ok && len(col.dense) == 1 {
		params.VectorsConfig = qdrant.NewVectorsConfig(p)
	} else {
		params.VectorsConfig = qdrant.NewVectorsConfigMap(col.dense)
	}
	if len(col.sparse) > 0 {
		m := map[string]*qdrant.SparseVectorParams{}
		for n := range col.sparse {
			m[n] = &qdrant.SparseVectorParams{}
		}
		params.SparseVectorsConfig = qdrant.NewSparseVectorsConfig(m)
	}
	n := uint64(len(col.points))
	return &qdrant.GetCollectionInfoResponse{Result: &qdrant.CollectionInfo{
		Status: qdrant.CollectionStatus_Green, PointsCount: &n,
		Config: &qdrant.CollectionConfig{Params: params},
	}}, nil
}

func (c *collectionsServer) List(context.Context, *qdrant.ListCollectionsRequest) (*qdrant.ListCollectionsResponse, error) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	var out []*qdrant.CollectionDescription
	for n := range c.s.colls {
		out = append(out, &qdrant.CollectionDescription{Name: n})
	}
	return &qdrant.ListCollectionsResponse{Collections: out}, nil
}

func (c *collectionsServer) Create(_ context.Context, r *qdrant.CreateCollection) (*qdrant.CollectionOperationResponse, error) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	name := r.GetCollectionName()
	if _, ok := c.s.colls[name]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "Wrong input: Collection `%s` already exists!", name)
	}
	col := &collection{dense: map[string]*qdrant.VectorParams{}, sparse: map[string]bool{}, points: map[string]*Point{}}
	vc := r.GetVectorsConfig()
	if p := vc.GetParams(); p != nil {
		col.dense[""] = p
	}
	for n, p := range vc.GetParamsMap().GetMap() {
		col.dense[n] = p
	}
	for n := range r.GetSparseVectorsConfig().GetMap() {
		col.sparse[n] = true
	}
	for n, p := range col.dense {
		if p.GetSize() == 0 {
			return nil, status.Errorf(codes.InvalidArgument, "Validation error in body: [vectors.%s.size: value 0 invalid, must be 1 or larger]", n)
		}
	}
	c.s.colls[name] = col
	return &qdrant.CollectionOperationResponse{Result: true}, nil
}

func idKey(id *qdrant.PointId) (string, error) {
	switch x := id.GetPointIdOptions().(type) {
	case *qdrant.PointId_Num:
		return fmt.Sprint(x.Num), nil
	case *qdrant.PointId_Uuid:
		u, err := uuid.Parse(x.Uuid)
		if err != nil {
			return "", status.Errorf(codes.InvalidArgument, "Unable to parse UUID: %s", x.Uuid)
		}
		return u.String(), nil
	}
	return "", status.Error(codes.InvalidArgument, "Wrong input: point id is empty")
}

func (p *pointsServer) Upsert(_ context.Context, r *qdrant.UpsertPoints) (*qdrant.PointsOperationResponse, error) {
	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	col, ok := s.colls[r.GetCollectionName()]
	if !ok {
		return nil, notFound(r.GetCollectionName())
	}
	// Qdrant validates the whole request before applying any of it.
	staged := make([]*Point, 0, len(r.GetPoints()))
	for _, pt := range r.GetPoints() {
		key, err := idKey(pt.GetId())
		if err != nil {
			return nil, err
		}
		np := &Point{ID: key, Vectors: map[string][]float32{}, Sparse: map[string]SparseVector{}, Payload: map[string]any{}}
		named := map[string]*qdrant.Vector{}
		if v := pt.GetVectors().GetVector(); v != nil {
			named[""] = v
		}
		for n, v := range pt.GetVectors().GetVectors().GetVectors() {
			named[n] = v
		}
		for n, v := range named {
			if sp := v.GetSparse(); sp != nil {
				if !col.sparse[n] {
					return nil, status.Errorf(codes.InvalidArgument, "Wrong input: Not existing vector name error: %s", n)
				}
				if len(sp.GetIndices()) != len(sp.GetValues()) {
					return nil, status.Error(codes.InvalidArgument, "Validation error in body: [sparse vector indices and values must have the same length]")
				}
				np.Sparse[n] = SparseVector{Indices: sp.GetIndices(), Values: sp.GetValues()}
				continue
			}
			params, ok := col.dense[n]
			if !ok {
				return nil, status.Errorf(codes.InvalidArgument, "Wrong input: Not existing vector name error: %s", n)
			}
			data := v.GetDense().GetData()
			if uint64(len(data)) != params.GetSize() {
				return nil, status.Errorf(codes.InvalidArgument, "Wrong input: Vector dimension error: expected dim: %d, got %d", params.GetSize(), len(data))
			}
			np.Vectors[n] = data
		}
		for k, v := range pt.GetPayload() {
			np.Payload[k] = goValue(v)
		}
		staged = append(staged, np)
	}
	for _, np := range staged {
		col.points[np.ID] = np
	}
	s.Upserts.Add(1)
	if r.GetWait() {
		s.Waited.Add(1)
	}
	return &qdrant.PointsOperationResponse{Result: &qdrant.UpdateResult{OperationId: ptr(uint64(s.Upserts.Load())), Status: qdrant.UpdateStatus_Completed}}, nil
}

func ptr[T any](v T) *T { return &v }

func (p *pointsServer) Delete(_ context.Context, r *qdrant.DeletePoints) (*qdrant.PointsOperationResponse, error) {
	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	col, ok := s.colls[r.GetCollectionName()]
	if !ok {
		return nil, notFound(r.GetCollectionName())
	}
	ids := r.GetPoints().GetPoints().GetIds()
	if ids == nil {
		return nil, status.Error(codes.Unimplemented, "this fake deletes by point IDs only")
	}
	for _, id := range ids {
		key, err := idKey(id)
		if err != nil {
			return nil, err
		}
		delete(col.points, key)
	}
	return &qdrant.PointsOperationResponse{Result: &qdrant.UpdateResult{Status: qdrant.UpdateStatus_Completed}}, nil
}

func (p *pointsServer) Count(_ context.Context, r *qdrant.CountPoints) (*qdrant.CountResponse, error) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	col, ok := p.s.colls[r.GetCollectionName()]
	if !ok {
		return nil, notFound(r.GetCollectionName())
	}
	return &qdrant.CountResponse{Result: &qdrant.CountResult{Count: uint64(len(col.points))}}, nil
}

// goValue turns a payload value into plain Go (int64, float64, string,
// bool, nil, []any, map[string]any).
func goValue(v *qdrant.Value) any {
	switch x := v.GetKind().(type) {
	case *qdrant.Value_IntegerValue:
		return x.IntegerValue
	case *qdrant.Value_DoubleValue:
		return x.DoubleValue
	case *qdrant.Value_StringValue:
		return x.StringValue
	case *qdrant.Value_BoolValue:
		return x.BoolValue
	case *qdrant.Value_StructValue:
		m := map[string]any{}
		for k, e := range x.StructValue.GetFields() {
			m[k] = goValue(e)
		}
		return m
	case *qdrant.Value_ListValue:
		l := make([]any, 0, len(x.ListValue.GetValues()))
		for _, e := range x.ListValue.GetValues() {
			l = append(l, goValue(e))
		}
		return l
	}
	return nil
}
