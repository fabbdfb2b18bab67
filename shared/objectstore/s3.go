// Package objectstore holds the object-store writers that more than one
// connector uses: S3 (and S3-compatible stores) with aws-sdk-go-v2. The
// object-storage sink writes its objects with it, the redshift sink
// stages the files it COPYs from.
package objectstore

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/spec"
)

// S3 writes to one S3 bucket with aws-sdk-go-v2.
type S3 struct {
	client     *s3.Client
	bucket     string
	contentMD5 bool // send Content-MD5 (custom endpoints, see NewS3)
}

// NewS3 builds the client. maxAttempts bounds the SDK's own attempts per
// request (0: the SDK's default; tests use 1 to see one failure).
func NewS3(ctx context.Context, bucket string, o *S3Options, maxAttempts int) (*S3, error) {
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
		return nil, fmt.Errorf("s3: aws config: %w", err)
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
		if maxAttempts > 0 {
			so.RetryMaxAttempts = maxAttempts
		}
	})
	return &S3{client: client, bucket: bucket, contentMD5: o.Endpoint != ""}, nil
}

func (s *S3) URL() string { return "s3://" + s.bucket }

func (s *S3) Put(ctx context.Context, key string, body []byte, contentType, contentEncoding string) error {
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
	return ClassifyS3(err)
}

func (s *S3) Delete(ctx context.Context, key string) error {
	// S3 answers 204 for a key that does not exist.
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	return ClassifyS3(err)
}

func (s *S3) Close() error { return nil }

// ClassifyS3 classifies by HTTP status when S3 answered (the SDK has
// already retried throttling and 5xx by then), by the error code when the
// status is ambiguous, and leaves network errors to resilience.ClassOf.
func ClassifyS3(err error) error {
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
		if st := re.HTTPStatusCode(); st >= 400 {
			return resilience.FromHTTP(st, re.Response.Header.Get("Retry-After"), time.Now(), err)
		}
	}
	return err
}

// S3Options configures the S3 client. Without access_key_id the AWS default
// credential chain applies (environment, shared files, web identity, ECS
// and EC2 instance roles).
type S3Options struct {
	Region          string `yaml:"region" doc:"AWS region; when empty the default chain's (AWS_REGION, shared config), else us-east-1."`
	Endpoint        string `yaml:"endpoint" doc:"Endpoint URL instead of AWS's (MinIO, R2, DigitalOcean Spaces, tests), like https://minio.local:9000."`
	ForcePathStyle  bool   `yaml:"force_path_style" default:"false" doc:"Address buckets as endpoint/bucket/key instead of bucket.endpoint/key (MinIO and most S3-compatible stores need it)."`
	AccessKeyID     string `yaml:"access_key_id" doc:"Static access key ID (with secret_access_key); without it the default credential chain (IAM role)."`
	SecretAccessKey string `yaml:"secret_access_key" secret:"true" doc:"Static secret access key."`
	SessionToken    string `yaml:"session_token" secret:"true" doc:"Session token of temporary static credentials."`
}

// Validate checks what the tags cannot express; paths are relative to
// the block.
func (o *S3Options) Validate() []spec.Problem {
	if o == nil {
		return nil
	}
	var ps []spec.Problem
	if o.Endpoint != "" {
		ps = append(ps, CheckURL("endpoint", o.Endpoint)...)
	}
	if (o.AccessKeyID == "") != (o.SecretAccessKey == "") {
		ps = append(ps, spec.Problem{Path: "secret_access_key", Message: "access_key_id and secret_access_key go together (set both, or neither to use the default credential chain)"})
	}
	if o.SessionToken != "" && o.AccessKeyID == "" {
		ps = append(ps, spec.Problem{Path: "session_token", Message: "needs access_key_id and secret_access_key"})
	}
	return ps
}

// CheckURL checks an endpoint is an http(s) URL with a host; path names
// the key in problems.
func CheckURL(path, raw string) []spec.Problem {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return []spec.Problem{{Path: path, Message: fmt.Sprintf("must be an http(s) URL like https://host:port, got %q", raw)}}
	}
	return nil
}
