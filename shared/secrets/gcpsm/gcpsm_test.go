package gcpsm_test

import (
	"context"
	"fmt"
	"hash/crc32"
	"net"
	"strings"
	"sync"
	"testing"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"go.yaml.in/yaml/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rivven/rivven-connect/shared/secrets"
	_ "github.com/rivven/rivven-connect/shared/secrets/gcpsm"
)

// fakeSM is the Secret Manager gRPC service (secretmanagerpb) with the
// behaviour its reference documents for AccessSecretVersion: names
// projects/*/secrets/*/versions/* where the version may be "latest",
// NOT_FOUND for an unknown secret or version, the payload with its CRC32C.
type fakeSM struct {
	secretmanagerpb.UnimplementedSecretManagerServiceServer
	mu       sync.Mutex
	versions map[string][]string // projects/p/secrets/s → payloads, version n at n-1
	names    []string
	corrupt  bool
}

func (f *fakeSM) AccessSecretVersion(_ context.Context, req *secretmanagerpb.AccessSecretVersionRequest) (*secretmanagerpb.AccessSecretVersionResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.names = append(f.names, req.GetName())
	secret, version, ok := strings.Cut(req.GetName(), "/versions/")
	if !ok || !strings.HasPrefix(secret, "projects/") || strings.Count(secret, "/") != 3 {
		return nil, status.Errorf(codes.InvalidArgument, "invalid resource name %q", req.GetName())
	}
	vs := f.versions[secret]
	n := len(vs)
	if version != "latest" {
		if _, err := fmtSscan(version, &n); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "invalid version %q", version)
		}
	}
	if n < 1 || n > len(vs) {
		return nil, status.Errorf(codes.NotFound, "Secret Version [%s] not found.", req.GetName())
	}
	data := []byte(vs[n-1])
	sum := int64(crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli)))
	if f.corrupt {
		sum++
	}
	return &secretmanagerpb.AccessSecretVersionResponse{
		Name:    strings.Replace(req.GetName(), "latest", "1", 1),
		Payload: &secretmanagerpb.SecretPayload{Data: data, DataCrc32C: &sum},
	}, nil
}

func TestAccessSecretVersion(t *testing.T) {
	f := &fakeSM{versions: map[string][]string{
		"projects/acme/secrets/db":    {`{"password":"gcp-old-pw"}`, `{"password":"gcp-sm-pw-2","port":5432}`},
		"projects/acme/secrets/token": {"gcp-token-value"},
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	secretmanagerpb.RegisterSecretManagerServiceServer(srv, f)
	go srv.Serve(ln)
	defer srv.Stop()

	var doc yaml.Node
	yaml.Unmarshal([]byte("{project_id: acme, endpoint: "+ln.Addr().String()+", insecure: true}"), &doc)
	r := secrets.NewResolver(secrets.GCP, doc.Content[0])
	defer r.Close()
	ctx := context.Background()
	for ref, want := range map[string]string{
		"gcp-sm:projects/acme/secrets/db/versions/latest#password": "gcp-sm-pw-2",
		"gcp-sm:projects/acme/secrets/db/versions/1#password":      "gcp-old-pw",
		"gcp-sm:projects/acme/secrets/db/versions/2#port":          "5432",
		"gcp-sm:token": "gcp-token-value",
	} {
		rf, _ := secrets.ParseRef(ref)
		got, err := r.Resolve(ctx, rf)
		if err != nil || got != want {
			t.Errorf("%s = %q, %v", ref, got, err)
		}
	}
	if !contains(f.names, "projects/acme/secrets/token/versions/latest") {
		t.Errorf("the short reference asked for %v", f.names)
	}
	for ref, want := range map[string]string{
		"gcp-sm:projects/acme/secrets/nope/versions/latest": "the gcp-secret-manager provider refused it: AccessSecretVersion projects/acme/secrets/nope/versions/latest: NotFound: Secret Version",
		"gcp-sm:projects/acme/secrets/db/versions/9":        "NotFound",
		"gcp-sm:projects/acme/secrets/db/versions/2#user":   `has no key "user"`,
	} {
		rf, _ := secrets.ParseRef(ref)
		_, err := r.Resolve(ctx, rf)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "gcp-sm-pw") {
			t.Errorf("%s: err = %v", ref, err)
		}
	}
	f.corrupt = true
	rf, _ := secrets.ParseRef("gcp-sm:projects/acme/secrets/token/versions/1")
	if _, err := r.Resolve(ctx, rf); err == nil || !strings.Contains(err.Error(), "CRC32C") {
		t.Errorf("corrupted payload: err = %v", err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func fmtSscan(s string, n *int) (int, error) { return fmt.Sscan(s, n) }
