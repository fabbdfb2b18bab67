// Package topic is the layer between sources and sink functions: the
// producer/consumer interfaces a transport implements, key partitioning,
// and the in-process transport the local emulator runs on.
package topic

import (
	"context"
	"errors"
	"time"
)

// Message is one record on a topic.
type Message struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []Header
	Time      time.Time
}

// Header is a message header.
type Header struct {
	Key   string
	Value []byte
}

// Producer publishes messages. Messages with the same key go to the same
// partition, in order. Produce returns once every message is stored.
type Producer interface {
	Produce(ctx context.Context, topic string, msgs []Message) error
}

// Spec is how a topic should look.
type Spec struct {
	Partitions        int
	ReplicationFactor int
}

// Admin creates and inspects topics.
type Admin interface {
	// Describe returns the topic's spec, or ErrUnknownTopic.
	Describe(ctx context.Context, topic string) (Spec, error)
	// Create creates a topic; creating an existing topic is not an error.
	Create(ctx context.Context, topic string, s Spec) error
}

// ErrUnknownTopic is returned for topics that do not exist.
var ErrUnknownTopic = errors.New("unknown topic")

// Partition picks a partition for key among n the way Kafka's default
// partitioner does (murmur2, positive), so the same key lands on the same
// partition here as on a Kafka cluster. Keyless messages use roundRobin.
func Partition(key []byte, n int, roundRobin uint32) int32 {
	if n <= 1 {
		return 0
	}
	if len(key) == 0 {
		return int32(roundRobin % uint32(n))
	}
	return int32((murmur2(key) & 0x7fffffff) % uint32(n))
}

// murmur2 is Kafka's hash (org.apache.kafka.common.utils.Utils.murmur2).
func murmur2(data []byte) uint32 {
	const (
		seed = 0x9747b28c
		m    = 0x5bd1e995
		r    = 24
	)
	length := len(data)
	h := uint32(seed) ^ uint32(length)
	n := length / 4
	for i := 0; i < n; i++ {
		k := uint32(data[i*4]) | uint32(data[i*4+1])<<8 | uint32(data[i*4+2])<<16 | uint32(data[i*4+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := data[n*4:]
	switch len(tail) {
	case 3:
		h ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(tail[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}
