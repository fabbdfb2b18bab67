// Package sqs holds the Amazon SQS connectors: sqs-sink sends events with
// SendMessageBatch (standard and FIFO queues), sqs-source long-polls a queue
// and deletes messages only after the batch holding them was durably
// published. Both speak the SQS JSON 1.0 protocol through aws-sdk-go-v2.
package sqs

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

func (a *Auth) validate() []spec.Problem {
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

// queue is what a queue URL tells: https://sqs.<region>.amazonaws.com/<account>/<name>.
type queue struct {
	url    string
	name   string
	region string // from an AWS host; "" otherwise (LocalStack, a fake)
	fifo   bool
}

var (
	queueName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)
	awsHost   = regexp.MustCompile(`^sqs[.-]([a-z0-9-]+)\.amazonaws\.com(\.cn)?$`)
)

func parseQueueURL(raw string) (queue, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return queue{}, fmt.Errorf("%q is not a queue URL like https://sqs.us-east-1.amazonaws.com/123456789012/my-queue", raw)
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) != 2 || parts[0] == "" {
		return queue{}, fmt.Errorf("%q: the path of a queue URL is /<account id>/<queue name>", raw)
	}
	q := queue{url: raw, name: parts[1], fifo: strings.HasSuffix(parts[1], ".fifo")}
	if !queueName.MatchString(strings.TrimSuffix(q.name, ".fifo")) || len(q.name) > 80 {
		return queue{}, fmt.Errorf("%q: a queue name has 1 to 80 letters, digits, - and _ (and a .fifo suffix for FIFO queues)", q.name)
	}
	if m := awsHost.FindStringSubmatch(u.Hostname()); m != nil {
		q.region = m[1]
	}
	return q, nil
}

// common are the settings both connectors share.
func checkCommon(queueURL, region, endpoint string, auth *Auth) (queue, []spec.Problem) {
	var ps []spec.Problem
	q, err := parseQueueURL(queueURL)
	if err != nil {
		ps = append(ps, spec.Problem{Path: "queue_url", Message: err.Error()})
	} else if region != "" && q.region != "" && region != q.region && endpoint == "" {
		ps = append(ps, spec.Problem{Path: "region", Message: fmt.Sprintf("region %q differs from the queue's region %q (in queue_url)", region, q.region)})
	}
	if endpoint != "" {
		if u, err := url.Parse(endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			ps = append(ps, spec.Problem{Path: "endpoint_url", Message: fmt.Sprintf("%q is not an http(s) URL", endpoint)})
		}
	}
	return q, append(ps, auth.validate()...)
}

// newClient builds an SQS client. The region is region, else the one in
// the queue URL, else us-east-1.
func newClient(ctx context.Context, q queue, region, endpoint string, auth *Auth) (*awssqs.Client, error) {
	if region == "" {
		region = q.region
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

// checkQueue is Check of both connectors: GetQueueAttributes.
func checkQueue(ctx context.Context, c *awssqs.Client, q queue) error {
	out, err := c.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(q.url),
		AttributeNames: []types.QueueAttributeName{"QueueArn", "FifoQueue"},
	})
	if err != nil {
		return fmt.Errorf("sqs: GetQueueAttributes %s: %w", q.url, err)
	}
	if fifo := out.Attributes["FifoQueue"] == "true"; fifo != q.fifo {
		return errors.New("sqs: the queue's FifoQueue attribute does not match its name")
	}
	return nil
}

// sendEntries sends ready in SendMessageBatch requests of at most
// batchSize messages and 256 KiB, recording in failed (by entry index)
// what SQS rejected or did not confirm. It returns an error only when the
// first request failed and nothing had failed before: then nothing was
// sent. On a FIFO queue the first failure fails every later entry too, so
// that a retry keeps the order.
func sendEntries(ctx context.Context, c *awssqs.Client, q queue, ready []entry, batchSize int, failed map[int]error) (requests int, err error) {
	sent := 0
	for start := 0; start < len(ready); {
		end, bytes := start, 0
		for end < len(ready) && end-start < batchSize && bytes+ready[end].size <= maxBatchBytes {
			bytes += ready[end].size
			end++
		}
		chunk := ready[start:end]
		start = end
		reqEntries := make([]types.SendMessageBatchRequestEntry, len(chunk))
		byID := make(map[string]int, len(chunk))
		for i, en := range chunk {
			reqEntries[i] = en.e
			byID[*en.e.Id] = en.index
		}
		out, err := c.SendMessageBatch(ctx, &awssqs.SendMessageBatchInput{QueueUrl: aws.String(q.url), Entries: reqEntries})
		requests++
		if err != nil {
			if sent == 0 && len(failed) == 0 {
				return requests, fmt.Errorf("sqs: SendMessageBatch: %w", err)
			}
			for _, en := range chunk {
				failed[en.index] = fmt.Errorf("sqs: SendMessageBatch: %w", err)
			}
			if q.fifo {
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
				if !seen[*en.e.Id] {
					failed[en.index] = errors.New("sqs: SendMessageBatch did not report this message")
				}
			}
		}
		sent += ok
		if q.fifo && ok < len(chunk) {
			failRest(failed, ready[start:], "an earlier message of the batch failed (FIFO order)")
			break
		}
	}
	return requests, nil
}
