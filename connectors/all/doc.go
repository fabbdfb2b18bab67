// Package all links every connector into a binary: importing it for side
// effects registers them all in the catalog.
//
// Each connector is imported from its own file behind a build tag, as
// Telegraf does with its plugins, so that a smaller binary can pick its
// connectors: build with the tag "custom" plus one tag per connector name,
//
//	go build -tags custom,datagen,stdout ./cmd/rivven-connect
//
// and only datagen and stdout are linked. Without "custom" every connector
// is included.
package all
