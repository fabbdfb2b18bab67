// Package objstore is a small object-store interface over the local
// filesystem, S3, GCS and Azure Blob Storage for sinks that keep more than
// write-only objects: they read objects back, list a prefix and create an
// object only when it does not exist yet (the primitive a transaction log
// such as Delta Lake's commits with). Keys are '/'-separated and relative
// to the store's root (a bucket or container, plus an optional prefix).
package objstore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/rivven/rivven-connect/shared/resilience"
)

// ErrExists is returned by PutIfAbsent when the key already exists: another
// writer created it first.
var ErrExists = errors.New("object already exists")

// ErrNotFound is returned by Get for a key that does not exist.
var ErrNotFound = errors.New("object not found")

// Store is one bucket (or directory) of one provider, under a prefix.
type Store interface {
	// Get reads a whole object; ErrNotFound (wrapped) when it is missing.
	Get(ctx context.Context, key string) ([]byte, error)
	// Put writes an object, replacing one that exists.
	Put(ctx context.Context, key string, body []byte) error
	// PutIfAbsent writes an object only if the key does not exist, as one
	// atomic step of the provider (local: a hard link that fails on an
	// existing name; S3: If-None-Match: *; GCS: ifGenerationMatch=0;
	// Azure: If-None-Match: *). ErrExists (wrapped) when it does.
	PutIfAbsent(ctx context.Context, key string, body []byte) error
	// List returns the keys under prefix that sort after startAfter
	// ("" for all), in byte order.
	List(ctx context.Context, prefix, startAfter string) ([]string, error)
	// Delete removes an object; a missing object is not an error.
	Delete(ctx context.Context, key string) error
	// URL names the store for messages (no secrets), like s3://bucket/prefix.
	URL() string
	Close() error
}

// Options are the provider settings a sink's config carries beside a
// location URI.
type Options struct {
	S3    *S3Options
	GCS   *GCSOptions
	Azure *AzureOptions
}

// Location is a parsed table or folder URI.
type Location struct {
	Scheme string // file, s3, gs, az
	Bucket string // bucket or container; empty for file
	Prefix string // key prefix without leading or trailing '/'; for file, the directory
}

// ParseLocation reads a location: a local path (absolute or relative) or
// file:///path, s3://bucket/prefix (s3a too), gs://bucket/prefix, and
// az://container/prefix (abfs[s]://container@account.dfs.core.windows.net/prefix
// names the container the same way).
func ParseLocation(uri string) (Location, error) {
	if strings.TrimSpace(uri) == "" {
		return Location{}, errors.New("empty location")
	}
	if !strings.Contains(uri, "://") {
		abs, err := filepath.Abs(uri)
		if err != nil {
			return Location{}, err
		}
		return Location{Scheme: "file", Prefix: abs}, nil
	}
	u, err := url.Parse(uri)
	if err != nil {
		return Location{}, fmt.Errorf("%q is not a URI", uri)
	}
	prefix := strings.Trim(u.Path, "/")
	switch u.Scheme {
	case "file":
		if u.Path == "" {
			return Location{}, fmt.Errorf("%q has no path", uri)
		}
		return Location{Scheme: "file", Prefix: filepath.Clean(u.Path)}, nil
	case "s3", "s3a":
		if u.Host == "" {
			return Location{}, fmt.Errorf("%q names no bucket", uri)
		}
		return Location{Scheme: "s3", Bucket: u.Host, Prefix: prefix}, nil
	case "gs":
		if u.Host == "" {
			return Location{}, fmt.Errorf("%q names no bucket", uri)
		}
		return Location{Scheme: "gs", Bucket: u.Host, Prefix: prefix}, nil
	case "az", "azure", "abfs", "abfss":
		container := u.Host
		if u.User != nil {
			container = u.User.Username() // abfss://container@account.dfs.core.windows.net
		}
		if container == "" {
			return Location{}, fmt.Errorf("%q names no container", uri)
		}
		return Location{Scheme: "az", Bucket: container, Prefix: prefix}, nil
	}
	return Location{}, fmt.Errorf("scheme %q is not supported (allowed: a local path or file://, s3://, gs://, az://)", u.Scheme)
}

// Open opens the store of a location.
func Open(ctx context.Context, loc Location, o Options) (Store, error) {
	switch loc.Scheme {
	case "file":
		return NewLocal(loc.Prefix)
	case "s3":
		return NewS3(ctx, loc.Bucket, loc.Prefix, o.S3)
	case "gs":
		return NewGCS(ctx, loc.Bucket, loc.Prefix, o.GCS)
	case "az":
		if o.Azure == nil {
			return nil, errors.New("azure: the azure block is required (account and a credential, or a connection string)")
		}
		return NewAzure(loc.Bucket, loc.Prefix, o.Azure)
	}
	return nil, fmt.Errorf("unknown scheme %q", loc.Scheme)
}

// join puts a prefix before a key.
func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "/" + key
}

// classifyHTTP classifies a provider error that carries an HTTP status:
// 5xx, 408 and 429 are retryable, 401/403 (Auth) and 404 (bucket or
// container missing) are permanent.
func classifyHTTP(status int, retryAfter string, err error) error {
	if status >= 400 {
		return resilience.FromHTTP(status, retryAfter, time.Now(), err)
	}
	return err
}
