// Package sqs holds the Amazon SQS connectors: sqs-sink sends events with
// SendMessageBatch (standard and FIFO queues), sqs-source long-polls a queue
// and deletes messages only after the batch holding them was durably
// published. Both speak the SQS JSON 1.0 protocol through aws-sdk-go-v2;
// the client layer they share with the SQS topic transport is
// shared/topic/sqstopic.
package sqs

import (
	"fmt"
	"net/url"

	"github.com/rivven/rivven-connect/shared/spec"
	"github.com/rivven/rivven-connect/shared/topic/sqstopic"
)

// Auth selects the AWS credentials; without it the SDK's default chain
// (environment, shared config, web identity, container and instance roles)
// is used.
type Auth = sqstopic.Auth

// common are the settings both connectors share.
func checkCommon(queueURL, region, endpoint string, auth *Auth) (sqstopic.Queue, []spec.Problem) {
	var ps []spec.Problem
	q, err := sqstopic.ParseQueueURL(queueURL)
	if err != nil {
		ps = append(ps, spec.Problem{Path: "queue_url", Message: err.Error()})
	} else if region != "" && q.Region != "" && region != q.Region && endpoint == "" {
		ps = append(ps, spec.Problem{Path: "region", Message: fmt.Sprintf("region %q differs from the queue's region %q (in queue_url)", region, q.Region)})
	}
	if endpoint != "" {
		if u, err := url.Parse(endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			ps = append(ps, spec.Problem{Path: "endpoint_url", Message: fmt.Sprintf("%q is not an http(s) URL", endpoint)})
		}
	}
	return q, append(ps, auth.Validate()...)
}
