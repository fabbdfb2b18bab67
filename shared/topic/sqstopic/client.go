// Package sqstopic is the SQS client layer: the topic transport a deployed
// pipeline uses with broker.transport sqs (one queue per topic), and the
// queue URL parsing, credentials and SendMessageBatch handling the SQS
// connectors share. It is framework, not a connector, so the hosts link it
// without linking a connector.
package sqstopic

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/rivven/rivven-connect/shared/spec"
)

// Auth selects the AWS credentials; without it the SDK's default chain
// (environment, shared config, web identity, container and instance roles)
// is used.
type Auth struct {
	AccessKeyID     string `yaml:"access_key_id" doc:"Static access key id (with secret_access_key)."`
	SecretAccessKey string `yaml:"secret_access_key" secret:"true" doc:"Static secret access key."`
	SessionToken    string `yaml:"session_token" secret:"true" doc:"Session token of temporary credentials."`
	Profile         string `yaml:"profile" doc:"Named profile of the shared config and credentials files."`
}

// Validate checks the combination of keys; paths are relative to the
// auth block's parent.
func (a *Auth) Validate() []spec.Problem {
	if a == nil {
		return nil
	}
	var ps []spec.Problem
	if (a.AccessKeyID == "") != (a.SecretAccessKey == "") {
		ps = append(ps, spec.Problem{Path: "auth", Message: "access_key_id and secret_access_key go together"})
	}
	if a.SessionToken != "" && a.AccessKeyID == "" {
		ps = append(ps, spec.Problem{Path: "auth.session_token", Message: "needs access_key_id and secret_access_key"})
	}
	if a.Profile != "" && a.AccessKeyID != "" {
		ps = append(ps, spec.Problem{Path: "auth.profile", Message: "use either a profile or static keys, not both"})
	}
	return ps
}

// Queue is what a queue URL tells: https://sqs.<region>.amazonaws.com/<account>/<name>.
type Queue struct {
	URL    string
	Name   string
	Region string // from an AWS host; "" otherwise (LocalStack, a fake)
	FIFO   bool
}

var (
	queueName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)
	awsHost   = regexp.MustCompile(`^sqs[.-]([a-z0-9-]+)\.amazonaws\.com(\.cn)?$`)
)

// ParseQueueURL reads a queue URL.
func ParseQueueURL(raw string) (Queue, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return Queue{}, fmt.Errorf("%q is not a queue URL like https://sqs.us-east-1.amazonaws.com/123456789012/my-queue", raw)
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) != 2 || parts[0] == "" {
		return Queue{}, fmt.Errorf("%q: the path of a queue URL is /<account id>/<queue name>", raw)
	}
	q := Queue{URL: raw, Name: parts[1], FIFO: strings.HasSuffix(parts[1], ".fifo")}
	if !queueName.MatchString(strings.TrimSuffix(q.Name, ".fifo")) || len(q.Name) > 80 {
		return Queue{}, fmt.Errorf("%q: a queue name has 1 to 80 letters, digits, - and _ (and a .fifo suffix for FIFO queues)", q.Name)
	}
	if m := awsHost.FindStringSubmatch(u.Hostname()); m != nil {
		q.Region = m[1]
	}
	return q, nil
}

// NewClient builds an SQS client. The region is region, else the one in
// the queue URL, else us-east-1.
func NewClient(ctx context.Context, q Queue, region, endpoint string, auth *Auth) (*awssqs.Client, error) {
	if region == "" {
		region = q.Region
	}
	if region == "" {
		region = "us-east-1"
	}
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(region)}
	if auth != nil {
		if auth.Profile != "" {
			opts = append(opts, awsconfig.WithSharedConfigProfile(auth.Profile))
		}
		if auth.AccessKeyID != "" {
			opts = append(opts, awsconfig.WithCredentialsProvider(
				credentials.NewStaticCredentialsProvider(auth.AccessKeyID, auth.SecretAccessKey, auth.SessionToken)))
		}
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("sqs: aws config: %w", err)
	}
	return awssqs.NewFromConfig(cfg, func(o *awssqs.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	}), nil
}

// CheckQueue is Check of both connectors: GetQueueAttributes.
func CheckQueue(ctx context.Context, c *awssqs.Client, q Queue) error {
	out, err := c.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(q.URL),
		AttributeNames: []types.QueueAttributeName{"QueueArn", "FifoQueue"},
	})
	if err != nil {
		return fmt.Errorf("sqs: GetQueueAttributes %s: %w", q.URL, err)
	}
	if fifo := out.Attributes["FifoQueue"] == "true"; fifo != q.FIFO {
		return errors.New("sqs: the queue's FifoQueue attribute does not match its name")
	}
	return nil
}

// Limits of SQS (as of the API reference this was written from).
const (
	MaxMessageBytes = 256 * 1024 // one message: body plus attribute names, types and values
	MaxBatchBytes   = 256 * 1024 // the sum of a SendMessageBatch request's messages
)

// Entry is one message ready to send; Index is the caller's index of it
// (an event's in its batch), by which failures are reported.
type Entry struct {
	Index int
	E     types.SendMessageBatchRequestEntry
	Size  int
}

// SendEntries sends ready in SendMessageBatch requests of at most
// batchSize messages and 256 KiB, recording in failed (by entry index)
// what SQS rejected or did not confirm. It returns an error only when the
// first request failed and nothing had failed before: then nothing was
// sent. On a FIFO queue the first failure fails every later entry too, so
// that a retry keeps the order.
func SendEntries(ctx context.Context, c *awssqs.Client, q Queue, ready []Entry, batchSize int, failed map[int]error) (requests int, err error) {
	sent := 0
	for start := 0; start < len(ready); {
		end, bytes := start, 0
		for end < len(ready) && end-start < batchSize && bytes+ready[end].Size <= MaxBatchBytes {
			bytes += ready[end].Size
			end++
		}
		chunk := ready[start:end]
		start = end
		reqEntries := make([]types.SendMessageBatchRequestEntry, len(chunk))
		byID := make(map[string]int, len(chunk))
		for i, en := range chunk {
			reqEntries[i] = en.E
			byID[*en.E.Id] = en.Index
		}
		out, err := c.SendMessageBatch(ctx, &awssqs.SendMessageBatchInput{QueueUrl: aws.String(q.URL), Entries: reqEntries})
		requests++
		if err != nil {
			if sent == 0 && len(failed) == 0 {
				return requests, fmt.Errorf("sqs: SendMessageBatch: %w", err)
			}
			for _, en := range chunk {
				failed[en.Index] = fmt.Errorf("sqs: SendMessageBatch: %w", err)
			}
			if q.FIFO {
				failRest(failed, ready[start:], "an earlier request of the batch failed")
				break
			}
			continue
		}
		ok := 0
		for _, f := range out.Failed {
			idx, known := byID[aws.ToString(f.Id)]
			if !known {
				continue
			}
			failed[idx] = fmt.Errorf("sqs: message rejected: %s: %s (sender fault: %v)", aws.ToString(f.Code), aws.ToString(f.Message), f.SenderFault)
		}
		for _, r := range out.Successful {
			if _, known := byID[aws.ToString(r.Id)]; known {
				ok++
			}
		}
		// An entry in neither list was not confirmed: report it failed.
		if ok+len(out.Failed) < len(chunk) {
			seen := map[string]bool{}
			for _, r := range out.Successful {
				seen[aws.ToString(r.Id)] = true
			}
			for _, f := range out.Failed {
				seen[aws.ToString(f.Id)] = true
			}
			for _, en := range chunk {
				if !seen[*en.E.Id] {
					failed[en.Index] = errors.New("sqs: SendMessageBatch did not report this message")
				}
			}
		}
		sent += ok
		if q.FIFO && ok < len(chunk) {
			failRest(failed, ready[start:], "an earlier message of the batch failed (FIFO order)")
			break
		}
	}
	return requests, nil
}

func failRest(failed map[int]error, rest []Entry, why string) {
	for _, en := range rest {
		failed[en.Index] = errors.New("sqs: not sent: " + why)
	}
}
