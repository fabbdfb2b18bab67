// Package gcpsm is the secrets provider for Google Cloud Secret Manager:
// gcp-sm:projects/<p>/secrets/<s>/versions/<v>[#key] references read
// AccessSecretVersion with cloud.google.com/go/secretmanager and
// Application Default Credentials (a Cloud Run service's identity). A
// short reference gcp-sm:<s>[/versions/<v>] is in config.project_id, at
// version latest. The payload's CRC32C is checked when the server sends
// one. With #key the payload is a JSON object and the key's value is
// taken.
package gcpsm

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"go.yaml.in/yaml/v3"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/rivven/rivven-connect/shared/secrets"
	"github.com/rivven/rivven-connect/shared/spec"
)

func init() { secrets.Register(secrets.GCP, Open) }

// Config is the secrets.config block of provider gcp-secret-manager
// (gcp-sm: references use Application Default Credentials when the block
// names another provider).
type Config struct {
	ProjectID       string `yaml:"project_id" doc:"Project of short references (gcp-sm:<secret>); GOOGLE_CLOUD_PROJECT when empty."`
	CredentialsPath string `yaml:"credentials_path" doc:"Service account key file; Application Default Credentials when empty."`
	Endpoint        string `yaml:"endpoint" doc:"host:port of another endpoint (a regional endpoint, or a plaintext emulator or fake with insecure: true)."`
	Insecure        bool   `yaml:"insecure" default:"false" doc:"Talk to endpoint over plaintext gRPC without credentials (tests, emulators)."`
}

// Provider reads secrets from Secret Manager.
type Provider struct {
	cfg    *Config
	client *secretmanager.Client
}

// Open opens the provider from its config block (nil: defaults).
func Open(ctx context.Context, node *yaml.Node, path string) (secrets.Provider, error) {
	cfg := &Config{}
	if node != nil && node.Kind != 0 {
		var ps []spec.Problem
		if cfg, ps = spec.Decode[Config](node, path); len(ps) > 0 {
			return nil, spec.Problems(ps)
		}
	}
	return New(ctx, cfg)
}

// New opens a provider from a decoded config.
func New(ctx context.Context, cfg *Config) (*Provider, error) {
	var opts []option.ClientOption
	if cfg.Endpoint != "" {
		opts = append(opts, option.WithEndpoint(cfg.Endpoint))
	}
	if cfg.Insecure {
		opts = append(opts, option.WithoutAuthentication(), option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	} else if cfg.CredentialsPath != "" {
		opts = append(opts, option.WithAuthCredentialsFile(option.ServiceAccount, cfg.CredentialsPath))
	}
	c, err := secretmanager.NewClient(ctx, opts...)
	if err != nil {
		return nil, err
	}
	return &Provider{cfg: cfg, client: c}, nil
}

// Name is the version resource a reference names.
func (p *Provider) Name(ref secrets.Ref) (string, error) {
	n := strings.Trim(ref.Path, "/")
	if !strings.HasPrefix(n, "projects/") {
		if p.cfg.ProjectID == "" {
			return "", errors.New("a short reference needs secrets.config.project_id (or write projects/<p>/secrets/<s>/versions/<v>)")
		}
		n = "projects/" + p.cfg.ProjectID + "/secrets/" + n
	}
	if !strings.Contains(n, "/versions/") {
		n += "/versions/latest"
	}
	return n, nil
}

// Get accesses ref's secret version and returns its payload, or its key.
func (p *Provider) Get(ctx context.Context, ref secrets.Ref) (string, error) {
	name, err := p.Name(ref)
	if err != nil {
		return "", err
	}
	resp, err := p.client.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: name})
	if err != nil {
		if s, ok := status.FromError(err); ok {
			err = fmt.Errorf("AccessSecretVersion %s: %s: %s", name, s.Code(), s.Message())
			if s.Code() == codes.NotFound {
				err = fmt.Errorf("%w: %w", err, secrets.ErrNotFound)
			}
			return "", err
		}
		return "", fmt.Errorf("AccessSecretVersion %s: %w", name, err)
	}
	data := resp.GetPayload().GetData()
	if sum := resp.GetPayload().DataCrc32C; sum != nil && int64(crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))) != *sum {
		return "", fmt.Errorf("AccessSecretVersion %s: the payload does not match its CRC32C (corrupted in transit)", name)
	}
	if ref.Key == "" {
		return string(data), nil
	}
	return secrets.Field(data, ref.Key)
}

// Close closes the client.
func (p *Provider) Close() error { return p.client.Close() }
