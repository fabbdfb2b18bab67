package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/rivven/rivven-connect/shared/resilience"
)

// GCSOptions configures the GCS client.
type GCSOptions struct {
	ServiceAccountPath string `yaml:"service_account_path" doc:"Path of a service-account JSON key file. When set it is used, even with use_adc: true."`
	UseADC             bool   `yaml:"use_adc" default:"false" doc:"Use Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud, the metadata server) when service_account_path is empty. They are also used when both are unset, unless endpoint is set."`
	Endpoint           string `yaml:"endpoint" doc:"JSON API endpoint instead of Google's (fake-gcs-server, emulators), like http://127.0.0.1:4443/storage/v1/; with neither service_account_path nor use_adc, requests are then unauthenticated."`
}

// GCS is one bucket (under a prefix) through cloud.google.com/go/storage.
type GCS struct {
	client *storage.Client
	bucket *storage.BucketHandle
	name   string
	prefix string
}

// NewGCS builds the client.
func NewGCS(ctx context.Context, bucket, prefix string, o *GCSOptions) (*GCS, error) {
	if o == nil {
		o = &GCSOptions{}
	}
	var opts []option.ClientOption
	switch {
	case o.ServiceAccountPath != "":
		if _, err := os.Stat(o.ServiceAccountPath); err != nil {
			return nil, fmt.Errorf("gcs.service_account_path: %w", err)
		}
		opts = append(opts, option.WithAuthCredentialsFile(option.ServiceAccount, o.ServiceAccountPath))
	case o.UseADC:
	case o.Endpoint != "":
		opts = append(opts, option.WithoutAuthentication())
	}
	if o.Endpoint != "" {
		// Reads go through the JSON API too, which emulators serve (the
		// default XML API lives on another host).
		opts = append(opts, option.WithEndpoint(o.Endpoint), storage.WithJSONReads())
	}
	client, err := storage.NewClient(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("gcs client: %w", err)
	}
	// Plain writes replace an object with the same bytes on a retry, and
	// conditional ones are retried by the library's default policy.
	b := client.Bucket(bucket).Retryer(storage.WithPolicy(storage.RetryAlways))
	return &GCS{client: client, bucket: b, name: bucket, prefix: prefix}, nil
}

func (s *GCS) URL() string { return "gs://" + strings.TrimSuffix(s.name+"/"+s.prefix, "/") }

func (s *GCS) Get(ctx context.Context, key string) ([]byte, error) {
	r, err := s.bucket.Object(join(s.prefix, key)).NewReader(ctx)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return nil, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, classifyGCS(err)
	}
	defer r.Close()
	return io.ReadAll(r)
}

func (s *GCS) write(ctx context.Context, obj *storage.ObjectHandle, body []byte) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // a Writer not closed is aborted by cancelling its context
	w := obj.NewWriter(ctx)
	w.ChunkSize = 0 // one request, no resumable session
	if _, err := w.Write(body); err != nil {
		_ = w.Close()
		return err
	}
	return w.Close()
}

func (s *GCS) Put(ctx context.Context, key string, body []byte) error {
	return classifyGCS(s.write(ctx, s.bucket.Object(join(s.prefix, key)), body))
}

// PutIfAbsent sends ifGenerationMatch=0, which GCS answers with 412 when
// the object has a live generation.
func (s *GCS) PutIfAbsent(ctx context.Context, key string, body []byte) error {
	obj := s.bucket.Object(join(s.prefix, key)).If(storage.Conditions{DoesNotExist: true})
	err := s.write(ctx, obj, body)
	var ge *googleapi.Error
	if errors.As(err, &ge) && ge.Code == 412 {
		return fmt.Errorf("%s: %w", key, ErrExists)
	}
	return classifyGCS(err)
}

func (s *GCS) List(ctx context.Context, prefix, startAfter string) ([]string, error) {
	q := &storage.Query{Prefix: join(s.prefix, prefix)}
	if startAfter != "" {
		q.StartOffset = join(s.prefix, startAfter) + "\x00"
	}
	if err := q.SetAttrSelection([]string{"Name"}); err != nil {
		return nil, err
	}
	var keys []string
	it := s.bucket.Objects(ctx, q)
	for {
		a, err := it.Next()
		if err == iterator.Done {
			break
		}
		if err != nil {
			return nil, classifyGCS(err)
		}
		k := a.Name
		if s.prefix != "" {
			k = strings.TrimPrefix(k, s.prefix+"/")
		}
		if k > startAfter {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

func (s *GCS) Delete(ctx context.Context, key string) error {
	err := s.bucket.Object(join(s.prefix, key)).Delete(ctx)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return nil
	}
	return classifyGCS(err)
}

func (s *GCS) Close() error { return s.client.Close() }

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
