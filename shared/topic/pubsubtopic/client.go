// Package pubsubtopic is the topic transport on Google Cloud Pub/Sub: a
// deployed pipeline's source publishes to a Pub/Sub topic (topic.Producer),
// and sink functions are fed by a push or pull subscription of it
// (CreateSubscription). It also holds the client set-up the Pub/Sub
// connectors share (NewClient), so that credentials and emulator handling
// are the same everywhere.
//
// Mapping of a topic.Message: Value is the message data, Headers become
// attributes, Key becomes the ordering key (the publisher has message
// ordering enabled, so messages with the same key are stored and, on a
// subscription with message ordering, delivered in order). Pub/Sub has no
// partitions and no offsets: ordering is per key, and consumers acknowledge
// messages instead of committing offsets.
package pubsubtopic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/rivven/rivven-connect/shared/resilience"
)

// ClientConfig says how to reach Pub/Sub.
type ClientConfig struct {
	ProjectID string
	// CredentialsPath is a Google credentials JSON file (service account,
	// authorized user, impersonated service account or workload identity
	// federation). Empty: Application Default Credentials.
	CredentialsPath string
	// EmulatorHost is host:port of a Pub/Sub emulator (gcloud's, or pstest):
	// plaintext gRPC without authentication. The client library also
	// honours the PUBSUB_EMULATOR_HOST environment variable.
	EmulatorHost string
}

// credentialTypes maps the "type" of a credentials file to the option the
// client library wants: it refuses to guess the type, because loading an
// unexpected kind of credential from an untrusted file is a known attack.
var credentialTypes = map[string]option.CredentialsType{
	"service_account":              option.ServiceAccount,
	"authorized_user":              option.AuthorizedUser,
	"impersonated_service_account": option.ImpersonatedServiceAccount,
	"external_account":             option.ExternalAccount,
}

// CredentialsOption returns the client option for a credentials file. Its
// errors name the file and the type, never the content.
func CredentialsOption(path string) (option.ClientOption, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read credentials file: %w", err)
	}
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, fmt.Errorf("credentials file %s is not JSON", path)
	}
	t, ok := credentialTypes[head.Type]
	if !ok {
		return nil, fmt.Errorf("credentials file %s: unsupported type %q (allowed: service_account, authorized_user, impersonated_service_account, external_account)", path, head.Type)
	}
	return option.WithAuthCredentialsFile(t, path), nil
}

// NewClient connects to Pub/Sub. extra options go last (tests).
func NewClient(ctx context.Context, cc ClientConfig, extra ...option.ClientOption) (*pubsub.Client, error) {
	var opts []option.ClientOption
	switch {
	case cc.EmulatorHost != "":
		opts = append(opts,
			option.WithEndpoint(cc.EmulatorHost),
			option.WithoutAuthentication(),
			option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
			option.WithTelemetryDisabled(),
		)
	case cc.CredentialsPath != "":
		o, err := CredentialsOption(cc.CredentialsPath)
		if err != nil {
			return nil, err
		}
		opts = append(opts, o)
	}
	c, err := pubsub.NewClient(ctx, cc.ProjectID, append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("pubsub: connect: %w", err)
	}
	return c, nil
}

// FullName returns projects/<project>/<kind>/<id>; an id that already is a
// full name is returned as is.
func FullName(project, kind, id string) string {
	if strings.HasPrefix(id, "projects/") {
		return id
	}
	return "projects/" + project + "/" + kind + "/" + id
}

// ShortName returns the last segment of a full resource name.
func ShortName(name string) string {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		return name[i+1:]
	}
	return name
}

// Classify gives a gRPC error from Pub/Sub its resilience class, so that
// the engine retries what may pass (unavailable, deadline, quota) and not
// what cannot (permission, not found, invalid argument).
func Classify(err error) error {
	if err == nil {
		return nil
	}
	var re *resilience.Error
	if errors.As(err, &re) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		return err // not a gRPC status: let resilience.ClassOf guess
	}
	var c resilience.Class
	switch st.Code() {
	case codes.Unavailable, codes.Aborted, codes.Internal, codes.Unknown:
		c = resilience.Connection
	case codes.DeadlineExceeded:
		c = resilience.Timeout
	case codes.ResourceExhausted:
		c = resilience.RateLimited
	case codes.Unauthenticated, codes.PermissionDenied:
		c = resilience.Auth
	case codes.NotFound:
		c = resilience.NotFound
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		c = resilience.Schema
	default:
		c = resilience.Fatal // Cancelled, AlreadyExists, Unimplemented, DataLoss
	}
	return resilience.New(c, err)
}
