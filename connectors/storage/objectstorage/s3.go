package objectstorage

import (
	"context"
	"fmt"

	"github.com/rivven/rivven-connect/shared/objstore"
)

// newS3Store opens the bucket with the shared S3 writer.
func newS3Store(ctx context.Context, bucket string, o *S3Options) (*objstore.S3Writer, error) {
	attempts := 0
	if noRetries {
		attempts = 1
	}
	s, err := objstore.NewS3Writer(ctx, bucket, o, attempts)
	if err != nil {
		return nil, fmt.Errorf("object-storage: %w", err)
	}
	return s, nil
}

// s3Store is the shared S3 writer with the last offset as user metadata.
type s3Store struct{ *objstore.S3Writer }

func (s s3Store) Put(ctx context.Context, key string, body []byte, contentType, contentEncoding string, lastOffset int64) error {
	return s.PutMetadata(ctx, key, body, contentType, contentEncoding, lastOffsetMeta(lastOffset))
}

func (s s3Store) LastOffset(ctx context.Context, key string) (int64, objectState, error) {
	meta, found, err := s.Metadata(ctx, key)
	if err != nil || !found {
		return 0, objectAbsent, err
	}
	n, st := lastOffsetOf(meta)
	return n, st, nil
}
