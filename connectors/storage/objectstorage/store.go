package objectstorage

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rivven/rivven-connect/shared/resilience"
)

// store is one bucket of one provider. Keys are '/'-separated and relative
// to the bucket. Put overwrites: the sink relies on that for
// effectively-once delivery (a redelivered batch lands on the same key).
type store interface {
	// Put writes the object; lastOffset, when not negative, is stored
	// with it as metadata (metaLastOffset) in the same request.
	Put(ctx context.Context, key string, body []byte, contentType, contentEncoding string, lastOffset int64) error
	// LastOffset reads what Put stored with the object at key.
	LastOffset(ctx context.Context, key string) (int64, objectState, error)
	// Delete removes an object; a missing object is not an error.
	Delete(ctx context.Context, key string) error
	// URL names the bucket for messages, like s3://bucket (no secrets).
	URL() string
	Close() error
}

// metaLastOffset names the metadata of an object named after a log
// position that holds its last record's offset (Sink.put). Azure allows
// only C# identifiers as metadata names, hence the underscores.
const metaLastOffset = "rivven_last_offset"

// objectState is what LastOffset found at a key.
type objectState int8

const (
	objectAbsent   objectState = iota
	objectUnmarked             // an object without a last offset (written by an older version, or by something else)
	objectMarked
)

// lastOffsetOf reads metaLastOffset from an object's metadata, whatever
// the case the provider gives its names in.
func lastOffsetOf(meta map[string]string) (int64, objectState) {
	for k, v := range meta {
		if strings.EqualFold(k, metaLastOffset) {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				return n, objectMarked
			}
		}
	}
	return 0, objectUnmarked
}

// lastOffsetMeta is the metadata Put stores; nil for a negative offset.
func lastOffsetMeta(lastOffset int64) map[string]string {
	if lastOffset < 0 {
		return nil
	}
	return map[string]string{metaLastOffset: strconv.FormatInt(lastOffset, 10)}
}

// noRetries turns off the SDKs' own retries. Only tests set it, to see
// how one failed request is classified without waiting out backoffs.
var noRetries bool

// openStore builds the store of cfg's provider.
func openStore(ctx context.Context, cfg *Config) (store, error) {
	switch cfg.Provider {
	case ProviderS3:
		w, err := newS3Store(ctx, cfg.Bucket, cfg.S3)
		if err != nil {
			return nil, err
		}
		return s3Store{w}, nil
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
