package objstore

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// S3Writer writes whole objects with a content type and encoding to one
// bucket: the object-storage sink writes its objects with it, the redshift
// sink stages the files it COPYs from.
type S3Writer struct {
	client     *s3.Client
	bucket     string
	contentMD5 bool // send Content-MD5 (custom endpoints, see NewS3Client)
}

// NewS3Writer builds the writer; maxAttempts as for NewS3Client.
func NewS3Writer(ctx context.Context, bucket string, o *S3Options, maxAttempts int) (*S3Writer, error) {
	client, err := NewS3Client(ctx, o, maxAttempts)
	if err != nil {
		return nil, err
	}
	return &S3Writer{client: client, bucket: bucket, contentMD5: o != nil && o.Endpoint != ""}, nil
}

// URL is the bucket's s3:// URL.
func (s *S3Writer) URL() string { return "s3://" + s.bucket }

// Put writes body under key.
func (s *S3Writer) Put(ctx context.Context, key string, body []byte, contentType, contentEncoding string) error {
	return s.PutMetadata(ctx, key, body, contentType, contentEncoding, nil)
}

// PutMetadata writes body under key with user metadata (x-amz-meta-*),
// which is stored with the object in the same request.
func (s *S3Writer) PutMetadata(ctx context.Context, key string, body []byte, contentType, contentEncoding string, meta map[string]string) error {
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(key),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentType:   aws.String(contentType),
		Metadata:      meta,
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

// Metadata returns the user metadata of the object at key (one HEAD
// request); found is false when there is no such object.
func (s *S3Writer) Metadata(ctx context.Context, key string) (meta map[string]string, found bool, err error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		var nf *types.NotFound
		var re *smithyhttp.ResponseError
		if errors.As(err, &nf) || (errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound) {
			return nil, false, nil
		}
		return nil, false, ClassifyS3(err)
	}
	return out.Metadata, true, nil
}

// Delete removes key (S3 answers 204 for a key that does not exist).
func (s *S3Writer) Delete(ctx context.Context, key string) error {
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	return ClassifyS3(err)
}

// Close releases nothing; it completes the writer interfaces of its users.
func (s *S3Writer) Close() error { return nil }
