// Package gcssrc reads pipeline files from Google Cloud Storage
// (gs://bucket/object) with cloud.google.com/go/storage. It is its own
// package so that a function built with -tags custom links the Google
// Cloud client libraries only with the tag loaders.gcs.
package gcssrc

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"

	"cloud.google.com/go/storage"
)

// MaxSize bounds a pipeline file; anything larger is not a pipeline.
const MaxSize = 4 << 20

// Load reads gs://bucket/object with Application Default Credentials (the
// service's identity on Cloud Run). STORAGE_EMULATOR_HOST points the
// client at an emulator, without credentials.
func Load(ctx context.Context, ref string) ([]byte, error) {
	bucket, object, err := Parse(ref)
	if err != nil {
		return nil, err
	}
	client, err := storage.NewClient(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	defer client.Close()
	r, err := client.Bucket(bucket).Object(object).NewReader(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", ref, MaxSize)
	}
	return b, nil
}

// Parse splits gs://bucket/object.
func Parse(ref string) (bucket, object string, err error) {
	u, err := url.Parse(ref)
	if err != nil || u.Scheme != "gs" || u.Host == "" || strings.Trim(u.Path, "/") == "" {
		return "", "", fmt.Errorf("%q is not a gs://bucket/object URL", ref)
	}
	return u.Host, strings.TrimPrefix(u.Path, "/"), nil
}
