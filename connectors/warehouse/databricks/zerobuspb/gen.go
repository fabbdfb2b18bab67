// Package zerobuspb is the Zerobus Ingest gRPC service (databricks.zerobus.Zerobus):
// Go code generated from Databricks' published protobuf definitions in
// zerobus_service.proto (origin and license in ORIGIN.md).
package zerobuspb

//go:generate go run github.com/bufbuild/buf/cmd/buf@v1.75.0 generate
