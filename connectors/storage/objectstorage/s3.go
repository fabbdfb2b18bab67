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
