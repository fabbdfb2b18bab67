package objectstorage

import (
	"context"
	"fmt"
	"time"

	"github.com/rivven/rivven-connect/shared/resilience"
)

// store is one bucket of one provider. Keys are '/'-separated and relative
// to the bucket. Put overwrites: the sink relies on that for
// effectively-once delivery (a redelivered batch lands on the same key).
type store interface {
	Put(ctx context.Context, key string, body []byte, contentType, contentEncoding string) error
	// Delete removes an object; a missing object is not an error.
	Delete(ctx context.Context, key string) error
	// URL names the bucket for messages, like s3://bucket (no secrets).
	URL() string
	Close() error
}

// noRetries turns off the SDKs' own retries. Only tests set it, to see
// how one failed request is classified without waiting out backoffs.
var noRetries bool

// openStore builds the store of cfg's provider.
func openStore(ctx context.Context, cfg *Config) (store, error) {
	switch cfg.Provider {
	case ProviderS3:
		return newS3Store(ctx, cfg.Bucket, cfg.S3)
	case ProviderGCS:
		return newGCSStore(ctx, cfg.Bucket, cfg.GCS)
	case ProviderAzure:
		return newAzureStore(cfg.Bucket, cfg.Azure)
	case ProviderLocal:
		return newLocalStore(cfg.Bucket, cfg.Local)
	}
	return nil, fmt.Errorf("object-storage: unknown provider %q", cfg.Provider)
}

// classifyHTTP classifies a provider error that carries an HTTP status:
// 5xx, 408 and 429 are retryable, 401/403 (Auth) and 404 (bucket or
// container missing) are permanent. Errors without a status (network,
// timeouts) are left to resilience.ClassOf, which knows the network ones.
func classifyHTTP(status int, retryAfter string, err error) error {
	if status >= 400 {
		return resilience.FromHTTP(status, retryAfter, time.Now(), err)
	}
	return err
}
