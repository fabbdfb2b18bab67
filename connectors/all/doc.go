// Package all links every connector into a binary: importing it for side
// effects registers them all in the catalog.
//
// Each connector is imported from its own generated file, named after its
// build tag and constrained by it, as Telegraf does with its plugins (see
// shared/buildtag), so that a smaller binary can pick its connectors: build
// with the tag "custom" plus a group (sources, sinks, transforms) or one
// tag per component,
//
//	go build -tags custom,sources.datagen,transforms.mask_field,transforms.filter,sinks.stdout ./cmd/rivven-connect
//
// and only those are linked (`rivven-connect build -c PIPELINE` picks the
// tags a pipeline needs). Without "custom" every connector is included.
// components.go tells the vocabulary every connector, linked or not, so
// that a custom binary names the tag it lacks. A new connector: copy one
// of the files to <group>.<name>.go with its package, then run
// UPDATE_ALL=1 go test ./connectors/all/, which rewrites every file from
// the catalog (right name and tag, one file per registered name) and the
// table.
package all
