// Package awssm is the secrets provider for AWS Secrets Manager:
// aws-sm:<name or ARN>[#key] references read GetSecretValue (the
// AWSCURRENT version) with aws-sdk-go-v2 and the default credential chain
// (a function's or task's role). With #key the secret is a JSON object
// and the key's value is taken, as the console's key/value secrets hold
// them.
package awssm

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"
	"go.yaml.in/yaml/v3"

	"github.com/rivven/rivven-connect/shared/secrets"
	"github.com/rivven/rivven-connect/shared/spec"
)

func init() { secrets.Register(secrets.AWS, Open) }

// Config is the secrets.config block of provider aws-secrets-manager
// (aws-sm: references use the default chain when the block names another
// provider).
type Config struct {
	Region       string `yaml:"region" doc:"AWS region of the secrets; the default chain (AWS_REGION, profile) when empty, or the region of an ARN reference."`
	Endpoint     string `yaml:"endpoint" doc:"Custom Secrets Manager endpoint (VPC endpoints, tests)."`
	VersionStage string `yaml:"version_stage" doc:"Version stage read; AWSCURRENT when empty."`
}

// Provider reads secrets from Secrets Manager.
type Provider struct {
	cfg    *Config
	client *secretsmanager.Client
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
	var opts []func(*awsconfig.LoadOptions) error
	if cfg.Region != "" {
		opts = append(opts, awsconfig.WithRegion(cfg.Region))
	}
	ac, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, err
	}
	client := secretsmanager.NewFromConfig(ac, func(o *secretsmanager.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
	})
	return &Provider{cfg: cfg, client: client}, nil
}

// Get reads ref's secret (by name or ARN) and returns it, or its key.
func (p *Provider) Get(ctx context.Context, ref secrets.Ref) (string, error) {
	in := &secretsmanager.GetSecretValueInput{SecretId: aws.String(ref.Path)}
	if p.cfg.VersionStage != "" {
		in.VersionStage = aws.String(p.cfg.VersionStage)
	}
	out, err := p.client.GetSecretValue(ctx, in)
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) {
			err = fmt.Errorf("GetSecretValue %s: %s: %s", ref.Path, ae.ErrorCode(), ae.ErrorMessage())
			if ae.ErrorCode() == "ResourceNotFoundException" {
				err = fmt.Errorf("%w: %w", err, secrets.ErrNotFound)
			}
			return "", err
		}
		return "", fmt.Errorf("GetSecretValue %s: %w", ref.Path, err)
	}
	var doc []byte
	switch {
	case out.SecretString != nil:
		doc = []byte(*out.SecretString)
	default:
		doc = out.SecretBinary
	}
	if ref.Key == "" {
		return string(doc), nil
	}
	return secrets.Field(doc, ref.Key)
}
