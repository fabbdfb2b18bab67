package objstore

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/rivven/rivven-connect/shared/resilience"
	"github.com/rivven/rivven-connect/shared/spec"
)

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

// S3 is one bucket (under a prefix) through aws-sdk-go-v2.
type S3 struct {
	client     *s3.Client
	bucket     string
	prefix     string
	contentMD5 bool
}

// NewS3 builds the client; nothing is sent until the first request.
func NewS3(ctx context.Context, bucket, prefix string, o *S3Options) (*S3, error) {
	client, err := NewS3Client(ctx, o, 0)
	if err != nil {
		return nil, err
	}
	return &S3{client: client, bucket: bucket, prefix: prefix, contentMD5: o != nil && o.Endpoint != ""}, nil
}

// NewS3Client builds an aws-sdk-go-v2 S3 client from the options, the one
// client construction of every S3 user (this store, S3Writer). maxAttempts
// bounds the SDK's own attempts per request (0: the SDK's default; tests use
// 1 to see one failure).
func NewS3Client(ctx context.Context, o *S3Options, maxAttempts int) (*s3.Client, error) {
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
	return s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
			// S3-compatible stores often reject the flexible checksums
			// (aws-chunked trailers) the SDK sends to AWS by default;
			// writes send Content-MD5 instead, which they all verify.
			so.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			so.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		}
		so.UsePathStyle = o.ForcePathStyle
		if maxAttempts > 0 {
			so.RetryMaxAttempts = maxAttempts
		}
	}), nil
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

func (s *S3) URL() string { return "s3://" + strings.TrimSuffix(s.bucket+"/"+s.prefix, "/") }

func (s *S3) Get(ctx context.Context, key string) ([]byte, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(join(s.prefix, key))})
	if err != nil {
		var nk *types.NoSuchKey
		if errors.As(err, &nk) || statusOf(err) == 404 && !isCode(err, "NoSuchBucket") {
			return nil, fmt.Errorf("%s: %w", key, ErrNotFound)
		}
		return nil, ClassifyS3(err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	return b, err
}

func (s *S3) put(ctx context.Context, key string, body []byte, ifAbsent bool) error {
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(join(s.prefix, key)),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
	}
	if ifAbsent {
		in.IfNoneMatch = aws.String("*")
	}
	if s.contentMD5 {
		sum := md5.Sum(body)
		in.ContentMD5 = aws.String(base64.StdEncoding.EncodeToString(sum[:]))
	}
	_, err := s.client.PutObject(ctx, in)
	return err
}

func (s *S3) Put(ctx context.Context, key string, body []byte) error {
	return ClassifyS3(s.put(ctx, key, body, false))
}

// PutIfAbsent: S3 answers 412 Precondition Failed when the key exists, and
// 409 ConditionalRequestConflict when a concurrent conditional write of the
// same key is in flight (retryable: the next attempt sees its outcome).
func (s *S3) PutIfAbsent(ctx context.Context, key string, body []byte) error {
	err := s.put(ctx, key, body, true)
	if err != nil && (statusOf(err) == 412 || isCode(err, "PreconditionFailed")) {
		return fmt.Errorf("%s: %w", key, ErrExists)
	}
	return ClassifyS3(err)
}

func (s *S3) List(ctx context.Context, prefix, startAfter string) ([]string, error) {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(join(s.prefix, prefix))}
	if startAfter != "" {
		in.StartAfter = aws.String(join(s.prefix, startAfter))
	}
	var keys []string
	p := s3.NewListObjectsV2Paginator(s.client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, ClassifyS3(err)
		}
		for _, o := range page.Contents {
			k := aws.ToString(o.Key)
			if s.prefix != "" {
				k = strings.TrimPrefix(k, s.prefix+"/")
			}
			keys = append(keys, k)
		}
	}
	return keys, nil
}

func (s *S3) Delete(ctx context.Context, key string) error {
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(join(s.prefix, key))})
	return ClassifyS3(err)
}

func (s *S3) Close() error { return nil }

func statusOf(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		return re.HTTPStatusCode()
	}
	return 0
}

func isCode(err error, code string) bool {
	var api smithy.APIError
	return errors.As(err, &api) && api.ErrorCode() == code
}

// classifyS3 classifies by error code, then HTTP status; network errors are
// left to resilience.ClassOf.
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
		case "ConditionalRequestConflict":
			return resilience.New(resilience.Connection, err)
		}
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		return classifyHTTP(re.HTTPStatusCode(), re.Response.Header.Get("Retry-After"), err)
	}
	return err
}
