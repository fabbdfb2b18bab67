package objectstorage

import (
	"context"
	"errors"
	"fmt"
	"os"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"

	"github.com/rivven/rivven-connect/shared/resilience"
)

// gcsStore writes to one GCS bucket with cloud.google.com/go/storage.
type gcsStore struct {
	client *storage.Client
	bucket *storage.BucketHandle
	name   string
}

func newGCSStore(ctx context.Context, bucket string, o *GCSOptions) (*gcsStore, error) {
	if o == nil {
		o = &GCSOptions{}
	}
	var opts []option.ClientOption
	switch {
	case o.ServiceAccountPath != "":
		// The explicit key wins over use_adc (both set is the
		// reference's own example). Read it here so that a wrong path fails at startup with a
		// clear message instead of at the first upload.
		if _, err := os.Stat(o.ServiceAccountPath); err != nil {
			return nil, fmt.Errorf("object-storage: gcs.service_account_path: %w", err)
		}
		opts = append(opts, option.WithAuthCredentialsFile(option.ServiceAccount, o.ServiceAccountPath))
	case o.UseADC:
		// The client's default: Application Default Credentials.
	case o.Endpoint != "":
		// An emulator without credentials configured: do not look for
		// any (there are none on a CI machine, and the emulator ignores
		// them).
		opts = append(opts, option.WithoutAuthentication())
	}
	if o.Endpoint != "" {
		opts = append(opts, option.WithEndpoint(o.Endpoint))
	}
	client, err := storage.NewClient(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("object-storage: gcs client: %w", err)
	}
	// Every upload is idempotent by construction (same key, same bytes
	// on redelivery), so retrying it is always safe; the library retries
	// only conditional writes by default.
	policy := storage.RetryAlways
	if noRetries {
		policy = storage.RetryNever
	}
	b := client.Bucket(bucket).Retryer(storage.WithPolicy(policy))
	return &gcsStore{client: client, bucket: b, name: bucket}, nil
}

func (s *gcsStore) URL() string { return "gs://" + s.name }

func (s *gcsStore) Put(ctx context.Context, key string, body []byte, contentType, contentEncoding string, lastOffset int64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // a Writer not closed is aborted by cancelling its context
	w := s.bucket.Object(key).NewWriter(ctx)
	w.ContentType = contentType
	w.ContentEncoding = contentEncoding
	w.Metadata = lastOffsetMeta(lastOffset)
	// One request for the whole object (we hold it in memory anyway)
	// instead of a resumable session: a single round trip per object.
	w.ChunkSize = 0
	if _, err := w.Write(body); err != nil {
		_ = w.Close()
		return classifyGCS(err)
	}
	return classifyGCS(w.Close())
}

func (s *gcsStore) LastOffset(ctx context.Context, key string) (int64, objectState, error) {
	attrs, err := s.bucket.Object(key).Attrs(ctx)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return 0, objectAbsent, nil
	}
	if err != nil {
		return 0, objectAbsent, classifyGCS(err)
	}
	n, st := lastOffsetOf(attrs.Metadata)
	return n, st, nil
}

func (s *gcsStore) Delete(ctx context.Context, key string) error {
	err := s.bucket.Object(key).Delete(ctx)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return nil
	}
	return classifyGCS(err)
}

func (s *gcsStore) Close() error { return s.client.Close() }

// classifyGCS classifies by the JSON API's HTTP status; a missing bucket
// is NotFound, network errors are left to resilience.ClassOf.
func classifyGCS(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, storage.ErrBucketNotExist) {
		return resilience.New(resilience.NotFound, err)
	}
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		return classifyHTTP(ge.Code, ge.Header.Get("Retry-After"), err)
	}
	return err
}
