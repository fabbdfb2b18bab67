// Package s3src reads pipeline files from Amazon S3 (s3://bucket/key) with
// aws-sdk-go-v2. It is its own package so that a function built with
// -tags custom links the AWS SDK only with the tag loaders.s3.
package s3src

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// MaxSize bounds a pipeline file; anything larger is not a pipeline.
const MaxSize = 4 << 20

// Load reads s3://bucket/key with the default credential chain (the
// function's execution role on Lambda). AWS_ENDPOINT_URL_S3 (or
// AWS_ENDPOINT_URL) points it at an S3-compatible store, which is then
// addressed path-style as such stores expect.
func Load(ctx context.Context, ref string) ([]byte, error) {
	bucket, key, err := Parse(ref)
	if err != nil {
		return nil, err
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: aws config: %w", ref, err)
	}
	custom := os.Getenv("AWS_ENDPOINT_URL_S3") != "" || os.Getenv("AWS_ENDPOINT_URL") != ""
	client := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = custom })
	out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(io.LimitReader(out.Body, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", ref, MaxSize)
	}
	return b, nil
}

// Parse splits s3://bucket/key.
func Parse(ref string) (bucket, key string, err error) {
	u, err := url.Parse(ref)
	if err != nil || u.Scheme != "s3" || u.Host == "" || strings.Trim(u.Path, "/") == "" {
		return "", "", fmt.Errorf("%q is not an s3://bucket/key URL", ref)
	}
	return u.Host, strings.TrimPrefix(u.Path, "/"), nil
}
