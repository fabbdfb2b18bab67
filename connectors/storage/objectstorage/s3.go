package objectstorage

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/rivven/rivven-connect/shared/resilience"
)

// s3Store writes to one S3 bucket with aws-sdk-go-v2.
type s3Store struct {
	client     *s3.Client
	bucket     string
	contentMD5 bool // send Content-MD5 (custom endpoints, see newS3Store)
}

func newS3Store(ctx context.Context, bucket string, o *S3Options) (*s3Store, error) {
	if o == nil {
		o = &S3Options{}
	}
	var opts []func(*awsconfig.LoadOptions) error
	if o.Region != "" {
		opts = append(opts, awsconfig.WithRegion(o.Region))
	}
	if o.AccessKeyID != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(o.AccessKeyID, o.SecretAccessKey, o.SessionToken)))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("object-storage: s3: aws config: %w", err)
	}
	if cfg.Region == "" {
		// Neither configured nor in the environment: S3 needs one to
		// sign, and us-east-1 is where an unqualified bucket lives.
		cfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
			// S3-compatible stores often reject the flexible checksums
			// (aws-chunked trailers) the SDK sends to AWS by default;
			// Put sends Content-MD5 instead, which they all verify.
			so.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			so.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		}
		so.UsePathStyle = o.ForcePathStyle
		if noRetries {
			so.RetryMaxAttempts = 1
		}
	})
	return &s3Store{client: client, bucket: bucket, contentMD5: o.Endpoint != ""}, nil
}

func (s *s3Store) URL() string { return "s3://" + s.bucket }

func (s *s3Store) Put(ctx context.Context, key string, body []byte, contentType, contentEncoding string) error {
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(key),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentType:   aws.String(contentType),
	}
	if contentEncoding != "" {
		in.ContentEncoding = aws.String(contentEncoding)
	}
	if s.contentMD5 {
		sum := md5.Sum(body)
		in.ContentMD5 = aws.String(base64.StdEncoding.EncodeToString(sum[:]))
	}
	_, err := s.client.PutObject(ctx, in)
	return classifyS3(err)
}

func (s *s3Store) Delete(ctx context.Context, key string) error {
	// S3 answers 204 for a key that does not exist.
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	return classifyS3(err)
}

func (s *s3Store) Close() error { return nil }

// classifyS3 classifies by HTTP status when S3 answered (the SDK has
// already retried throttling and 5xx by then), by the error code when the
// status is ambiguous, and leaves network errors to resilience.ClassOf.
func classifyS3(err error) error {
	if err == nil {
		return nil
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "NoSuchBucket":
			return resilience.New(resilience.NotFound, err)
		case "SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests":
			return resilience.New(resilience.RateLimited, err)
		case "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "ExpiredToken", "InvalidToken":
			return resilience.New(resilience.Auth, err)
		}
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		return classifyHTTP(re.HTTPStatusCode(), re.Response.Header.Get("Retry-After"), err)
	}
	return err
}
