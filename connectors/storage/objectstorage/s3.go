package objectstorage

import (
	"context"
	"fmt"

	"github.com/rivven/rivven-connect/shared/objectstore"
)

// newS3Store opens the bucket with the shared S3 writer.
func newS3Store(ctx context.Context, bucket string, o *S3Options) (*objectstore.S3, error) {
	attempts := 0
	if noRetries {
		attempts = 1
	}
	s, err := objectstore.NewS3(ctx, bucket, o, attempts)
	if err != nil {
		return nil, fmt.Errorf("object-storage: %w", err)
	}
	return s, nil
}
