package objstore

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
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

// Delete removes key (S3 answers 204 for a key that does not exist).
func (s *S3Writer) Delete(ctx context.Context, key string) error {
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	return ClassifyS3(err)
}

// Close releases nothing; it completes the writer interfaces of its users.
func (s *S3Writer) Close() error { return nil }
