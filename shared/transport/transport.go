// Package transport opens the topic layer a pipeline's broker block names
// (Kafka, SQS or Pub/Sub). Transports register themselves from their own
// packages, so a binary links only the clients it was built with: a plain
// build of the CLI links all of them, a build with -tags custom only those
// its transports.<name> tags name (see shared/buildtag).
package transport

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/rivven/rivven-connect/shared/buildtag"
	"github.com/rivven/rivven-connect/shared/config"
	"github.com/rivven/rivven-connect/shared/topic"
)

// Transport publishes to and manages the topics of a deployed pipeline.
type Transport interface {
	topic.Producer
	topic.Admin
	Close() error
}

// Opener connects to the transport described by b; topics are the
// pipeline's settings.topic (auto_create and the defaults for new topics).
type Opener func(ctx context.Context, b *config.Broker, topics config.TopicSettings) (Transport, error)

var (
	mu      sync.RWMutex
	openers = map[string]Opener{}
)

// Register makes a transport available under name (the broker.transport
// value). It panics on a second registration of a name, a programming
// error.
func Register(name string, open Opener) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := openers[name]; dup {
		panic("transport: " + name + " registered twice")
	}
	openers[name] = open
}

// Linked lists the transports this binary links, sorted.
func Linked() []string {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]string, 0, len(openers))
	for n := range openers {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Name is the transport b selects: broker.transport, kafka when unset.
func Name(b *config.Broker) string {
	if b.Transport == "" {
		return "kafka"
	}
	return b.Transport
}

// Open connects to the transport b selects.
func Open(ctx context.Context, b *config.Broker, topics config.TopicSettings) (Transport, error) {
	name := Name(b)
	mu.RLock()
	open, ok := openers[name]
	mu.RUnlock()
	if !ok {
		linked := "none"
		if l := Linked(); len(l) > 0 {
			linked = strings.Join(l, ", ")
		}
		tag := buildtag.Transport(name)
		return nil, fmt.Errorf("broker.transport: %s is not linked into this binary (linked: %s; the tag %s links it); %s", name, linked, tag, buildtag.Hint(tag))
	}
	return open(ctx, b, topics)
}

// Hide makes this binary act as one built without the named transports
// until restore is called: tests use it to check what a custom build says
// when a pipeline needs a transport it lacks.
func Hide(names ...string) (restore func()) {
	mu.Lock()
	defer mu.Unlock()
	hidden := map[string]Opener{}
	for _, n := range names {
		if o, ok := openers[n]; ok {
			hidden[n] = o
			delete(openers, n)
		}
	}
	return func() {
		mu.Lock()
		defer mu.Unlock()
		for n, o := range hidden {
			openers[n] = o
		}
	}
}
