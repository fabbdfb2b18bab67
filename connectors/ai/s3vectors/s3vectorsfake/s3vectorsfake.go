// Package s3vectorsfake is an in-process Amazon S3 Vectors endpoint built
// from its API reference: the REST-JSON operations CreateVectorBucket,
// GetVectorBucket, CreateIndex, GetIndex, PutVectors and DeleteVectors
// (POST /<Operation> with a JSON body), SigV4-signed for service
// "s3vectors" (verified with the SDK's signer), errors as the reference
// lists them (NotFoundException 404, ConflictException 409,
// ValidationException 400, TooManyRequestsException 429,
// ServiceUnavailableException 503, in the X-Amzn-ErrorType header and a
// {"message"} body), and the documented limits: 1-500 vectors per
// PutVectors and 1-500 keys per DeleteVectors, keys of 1-1024 characters,
// float32 data of the index's dimension, metadata of at most 40 KB. It is
// test support, linked by tests only.
package s3vectorsfake

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rivven/rivven-connect/connectors/ai/llm/llmfake"
)

// Vector is a stored vector.
type Vector struct {
	Key      string
	Data     []float32
	Metadata map[string]any
}

// Index is a stored index.
type Index struct {
	Dimension      int
	DistanceMetric string
	DataType       string
	Vectors        map[string]Vector
}

// Server is the fake.
type Server struct {
	*httptest.Server
	AccessKey, SecretKey, Region string
	// Fault, when set, may fail the n-th call (1-based) of an operation
	// with a status (its error type follows from it).
	Fault func(op string, n int64) int

	mu      sync.Mutex
	buckets map[string]map[string]*Index
	calls   map[string]int64
	Puts    atomic.Int64
}

// Start serves an empty account in us-east-1.
func Start() *Server {
	s := &Server{AccessKey: "AKIDEXAMPLE", SecretKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", Region: "us-east-1",
		buckets: map[string]map[string]*Index{}, calls: map[string]int64{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// Calls is how many calls of an operation arrived.
func (s *Server) Calls(op string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// Index returns a copy of an index (nil if absent).
func (s *Server) Index(bucket, name string) *Index {
	s.mu.Lock()
	defer s.mu.Unlock()
	ix := s.buckets[bucket][name]
	if ix == nil {
		return nil
	}
	c := *ix
	c.Vectors = map[string]Vector{}
	for k, v := range ix.Vectors {
		c.Vectors[k] = v
	}
	return &c
}

func fail(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("X-Amzn-ErrorType", typ)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

var statusType = map[int]string{400: "ValidationException", 403: "AccessDeniedException", 404: "NotFoundException", 409: "ConflictException",
	429: "TooManyRequestsException", 500: "InternalServerException", 503: "ServiceUnavailableException"}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := llmfake.VerifySigV4(r, body, s.AccessKey, s.SecretKey, s.Region, "s3vectors"); err != nil {
		fail(w, http.StatusForbidden, "AccessDeniedException", "The request signature we calculated does not match the signature you provided: "+err.Error())
		return
	}
	op := r.URL.Path[1:]
	s.mu.Lock()
	s.calls[op]++
	n := s.calls[op]
	s.mu.Unlock()
	if s.Fault != nil {
		if st := s.Fault(op, n); st != 0 {
			if st == 429 || st == 503 {
				w.Header().Set("Retry-After", "0")
			}
			fail(w, st, statusType[st], fmt.Sprintf("injected %d", st))
			return
		}
	}
	if r.Method != http.MethodPost {
		fail(w, http.StatusNotFound, "NotFoundException", "unknown operation")
		return
	}
	var req map[string]any
	if err := json.Unmarshal(body, &req); err != nil {
		fail(w, http.StatusBadRequest, "ValidationException", "malformed JSON body")
		return
	}
	bucket, _ := req["vectorBucketName"].(string)
	index, _ := req["indexName"].(string)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch op {
	case "CreateVectorBucket":
		if _, ok := s.buckets[bucket]; ok {
			fail(w, http.StatusConflict, "ConflictException", "The specified vector bucket already exists.")
			return
		}
		if len(bucket) < 3 || len(bucket) > 63 {
			fail(w, http.StatusBadRequest, "ValidationException", "vectorBucketName must be 3 to 63 characters")
			return
		}
		s.buckets[bucket] = map[string]*Index{}
		writeJSON(w, map[string]any{"vectorBucketArn": "arn:aws:s3vectors:" + s.Region + ":123456789012:bucket/" + bucket})
	case "GetVectorBucket":
		if _, ok := s.buckets[bucket]; !ok {
			fail(w, http.StatusNotFound, "NotFoundException", "The specified vector bucket could not be found.")
			return
		}
		writeJSON(w, map[string]any{"vectorBucket": map[string]any{"vectorBucketName": bucket, "creationTime": float64(time.Now().Unix())}})
	case "CreateIndex":
		b, ok := s.buckets[bucket]
		if !ok {
			fail(w, http.StatusNotFound, "NotFoundException", "The specified vector bucket could not be found.")
			return
		}
		if _, ok := b[index]; ok {
			fail(w, http.StatusConflict, "ConflictException", "The specified index already exists.")
			return
		}
		dim, _ := req["dimension"].(float64)
		dm, _ := req["distanceMetric"].(string)
		dt, _ := req["dataType"].(string)
		if dim < 1 || dim > 4096 || (dm != "cosine" && dm != "euclidean") || dt != "float32" {
			fail(w, http.StatusBadRequest, "ValidationException", "dimension must be 1 to 4096, distanceMetric cosine or euclidean, dataType float32")
			return
		}
		b[index] = &Index{Dimension: int(dim), DistanceMetric: dm, DataType: dt, Vectors: map[string]Vector{}}
		writeJSON(w, map[string]any{"indexArn": "arn:aws:s3vectors:" + s.Region + ":123456789012:bucket/" + bucket + "/index/" + index})
	case "GetIndex":
		ix := s.lookup(w, bucket, index)
		if ix == nil {
			return
		}
		writeJSON(w, map[string]any{"index": map[string]any{"vectorBucketName": bucket, "indexName": index, "dataType": ix.DataType,
			"dimension": ix.Dimension, "distanceMetric": ix.DistanceMetric, "creationTime": float64(time.Now().Unix()),
			"indexArn": "arn:aws:s3vectors:" + s.Region + ":123456789012:bucket/" + bucket + "/index/" + index}})
	case "PutVectors":
		ix := s.lookup(w, bucket, index)
		if ix == nil {
			return
		}
		vs, _ := req["vectors"].([]any)
		if len(vs) < 1 || len(vs) > 500 {
			fail(w, http.StatusBadRequest, "ValidationException", fmt.Sprintf("vectors must hold 1 to 500 items, got %d", len(vs)))
			return
		}
		staged := make([]Vector, 0, len(vs))
		for i, x := range vs {
			m, _ := x.(map[string]any)
			key, _ := m["key"].(string)
			if key == "" || len(key) > 1024 {
				fail(w, http.StatusBadRequest, "ValidationException", fmt.Sprintf("vectors[%d].key must be 1 to 1024 characters", i))
				return
			}
			data, _ := m["data"].(map[string]any)
			fl, _ := data["float32"].([]any)
			if len(fl) != ix.Dimension {
				fail(w, http.StatusBadRequest, "ValidationException", fmt.Sprintf("Invalid record for key '%s': vector must have length %d, but has length %d", key, ix.Dimension, len(fl)))
				return
			}
			v := Vector{Key: key, Data: make([]float32, len(fl))}
			for j, f := range fl {
				n, ok := f.(float64)
				if !ok {
					fail(w, http.StatusBadRequest, "ValidationException", fmt.Sprintf("vectors[%d].data.float32[%d] is not a number", i, j))
					return
				}
				v.Data[j] = float32(n)
			}
			if md, ok := m["metadata"].(map[string]any); ok {
				if b, _ := json.Marshal(md); len(b) > 40*1024 {
					fail(w, http.StatusBadRequest, "ValidationException", fmt.Sprintf("Invalid record for key '%s': metadata is larger than 40 KB", key))
					return
				}
				v.Metadata = md
			}
			staged = append(staged, v)
		}
		for _, v := range staged {
			ix.Vectors[v.Key] = v
		}
		s.Puts.Add(1)
		writeJSON(w, map[string]any{})
	case "DeleteVectors":
		ix := s.lookup(w, bucket, index)
		if ix == nil {
			return
		}
		keys, _ := req["keys"].([]any)
		if len(keys) < 1 || len(keys) > 500 {
			fail(w, http.StatusBadRequest, "ValidationException", "keys must hold 1 to 500 items")
			return
		}
		for _, k := range keys {
			delete(ix.Vectors, fmt.Sprint(k))
		}
		writeJSON(w, map[string]any{})
	default:
		fail(w, http.StatusNotFound, "NotFoundException", "this fake does not serve "+op)
	}
}

func (s *Server) lookup(w http.ResponseWriter, bucket, index string) *Index {
	b, ok := s.buckets[bucket]
	if !ok {
		fail(w, http.StatusNotFound, "NotFoundException", "The specified vector bucket could not be found.")
		return nil
	}
	ix, ok := b[index]
	if !ok {
		fail(w, http.StatusNotFound, "NotFoundException", "The specified index could not be found.")
		return nil
	}
	return ix
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
