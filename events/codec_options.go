package events

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrSkipped is returned by a codec's Append for an event the encoding
// leaves out (a truncate under Debezium's default skipped.operations, a
// schema change that does not belong in the data stream). A sink counts
// such an event as done without writing it.
var ErrSkipped = errors.New("left out by the encoding")

// Tombstoner is implemented by codecs that follow some events with a
// tombstone (the same key, a null value), as Debezium follows a delete, so
// that a compacted topic forgets the key. Only sinks whose records have a
// key and may have no value (Kafka) write them.
type Tombstoner interface {
	Tombstone(e *Event) bool
}

// Diverter is implemented by codecs that send some events to a topic of
// their own instead of the data stream (Debezium's schema change topic).
// A sink that cannot write there leaves such events out.
type Diverter interface {
	Divert(e *Event) (topic string, ok bool)
}

// DebeziumOptions are the settings of the Debezium encoding, named after
// the Debezium connector properties they mirror (dots become
// underscores) and defaulting as Debezium does.
type DebeziumOptions struct {
	SkippedOperations          string `yaml:"skipped_operations" default:"t" doc:"Operations left out of the stream, as Debezium's skipped.operations: a comma-separated list of c (insert), u (update), d (delete), t (truncate), or none. Debezium skips truncates by default, and Flink's debezium-json format fails on them."`
	TombstonesOnDelete         bool   `yaml:"tombstones_on_delete" default:"true" doc:"After a delete, a tombstone (same key, null value) so that log compaction can drop the key, as Debezium's tombstones.on.delete. Written by sinks whose records can have a null value (kafka); others ignore it."`
	ProvideTransactionMetadata bool   `yaml:"provide_transaction_metadata" default:"false" doc:"As Debezium's provide.transaction.metadata: add the transaction block {id: \"<txId>:<commit position>\", total_order, data_collection_order} to every change, and (kafka sink) write the BEGIN and END records a CDC source with provide_transaction_metadata sends to transaction_topic. data_collection_order and the BEGIN/END records need the source's provide_transaction_metadata too."`
	TransactionTopic           string `yaml:"transaction_topic" doc:"Topic of the BEGIN/END records (Debezium's topic.transaction). Empty: <source name>.transaction, as Debezium names it after the logical server name. Only the kafka sink writes them; other sinks leave them out."`
	SchemaChangesTopic         string `yaml:"schema_changes_topic" doc:"Topic that schema changes go to, in Debezium's schema change topic shape (tableChanges with jdbcType, typeName, position). Empty: schema changes are left out, as Debezium's PostgreSQL connector does; they never go into the data stream. Only the kafka sink writes it."`
	SchemasEnable              bool   `yaml:"schemas_enable" default:"false" doc:"Write each record as Kafka Connect's JsonConverter does with schemas.enable=true: {schema, payload}, the schema built from the table's columns with Debezium's type names (org.apache.kafka.connect.data.Decimal, io.debezium.time.MicroTimestamp, io.debezium.data.Json, ...); the kafka sink's keys too. Off by default, as in Debezium Server."`
	DecimalHandlingMode        string `yaml:"decimal_handling_mode" default:"precise" enum:"precise,double,string" doc:"How NUMERIC/DECIMAL (and PostgreSQL money) columns are written, as Debezium's decimal.handling.mode: precise (the default) as Kafka Connect's Decimal, base64 of the unscaled big-endian two's complement value with the scale in the schema (NUMERIC without a scale as io.debezium.data.VariableScaleDecimal {scale, value}); double as a number; string as the exact text."`
	TimePrecisionMode          string `yaml:"time_precision_mode" default:"adaptive" enum:"adaptive,adaptive_time_microseconds,connect" doc:"How DATE, TIME and local TIMESTAMP/DATETIME columns are written, as Debezium's time.precision.mode: adaptive (the default) by the column's precision (io.debezium.time.Date days, Time ms or MicroTime µs, Timestamp ms or MicroTimestamp µs; MySQL TIME always MicroTime, as its connector's default adaptive_time_microseconds); adaptive_time_microseconds: TIME always MicroTime; connect: Kafka Connect's Date, Time (ms) and Timestamp (ms). Zoned timestamps are ISO strings (io.debezium.time.ZonedTimestamp) in every mode."`
}

// DefaultDebeziumOptions are Debezium's defaults.
func DefaultDebeziumOptions() DebeziumOptions {
	return DebeziumOptions{SkippedOperations: "t", TombstonesOnDelete: true,
		DecimalHandlingMode: DecimalPrecise, TimePrecisionMode: TimeAdaptive}
}

// CloudEventsOptions are the settings of the CloudEvents encoding.
type CloudEventsOptions struct {
	TypePrefix string `yaml:"type_prefix" default:"io.rivven" doc:"Reverse-DNS prefix of the CloudEvents type: <type_prefix>.<stream>.<event type>."`
}

// DefaultCloudEventsOptions are the CloudEvents defaults.
func DefaultCloudEventsOptions() CloudEventsOptions {
	return CloudEventsOptions{TypePrefix: "io.rivven"}
}

// OptionError is a problem with one encoding option; Path is relative to
// the sink's config (debezium.skipped_operations).
type OptionError struct {
	Path, Message string
}

func (e *OptionError) Error() string { return e.Path + ": " + e.Message }

// skipSet is a parsed skipped_operations.
type skipSet uint8

func parseSkipped(s string) (skipSet, error) {
	var set skipSet
	for _, p := range strings.Split(s, ",") {
		switch p = strings.TrimSpace(p); p {
		case "c":
			set |= 1
		case "u":
			set |= 2
		case "d":
			set |= 4
		case "t":
			set |= 8
		case "none", "":
		default:
			return 0, fmt.Errorf("unknown operation %q (allowed: c, u, d, t, none)", p)
		}
	}
	return set, nil
}

func (s skipSet) has(op string) bool {
	switch op {
	case "c":
		return s&1 != 0
	case "u":
		return s&2 != 0
	case "d":
		return s&4 != 0
	case "t":
		return s&8 != 0
	}
	return false
}

// ForTopics returns c as used by a sink that can write records to topics
// of the codec's choosing (Kafka): the Debezium encoding then writes the
// BEGIN/END records of provide_transaction_metadata, which other sinks
// leave out. Other codecs are returned as they are.
func ForTopics(c Codec) Codec {
	if d, ok := c.(*debeziumCodec); ok {
		return &debeziumCodec{opts: d.opts, skip: d.skip, now: d.now, topics: true}
	}
	return c
}

// NewCodec returns the codec name stands for with its options (each
// codec reads its own and ignores the others'). Problems are
// *OptionError values naming the option.
func NewCodec(name string, dbz DebeziumOptions, ce CloudEventsOptions) (Codec, error) {
	switch name {
	case CodecRivven, "", "json":
		return Rivven, nil
	case CodecDebezium:
		if dbz == (DebeziumOptions{}) {
			dbz = DefaultDebeziumOptions() // a config built in code, without spec defaults
		}
		skip, err := parseSkipped(dbz.SkippedOperations)
		if err != nil {
			return nil, &OptionError{Path: "debezium.skipped_operations", Message: err.Error()}
		}
		switch dbz.DecimalHandlingMode {
		case "":
			dbz.DecimalHandlingMode = DecimalPrecise
		case DecimalPrecise, DecimalDouble, DecimalString:
		default:
			return nil, &OptionError{Path: "debezium.decimal_handling_mode",
				Message: fmt.Sprintf("unknown mode %q (allowed: precise, double, string)", dbz.DecimalHandlingMode)}
		}
		switch dbz.TimePrecisionMode {
		case "":
			dbz.TimePrecisionMode = TimeAdaptive
		case TimeAdaptive, TimeAdaptiveMicroseconds, TimeConnect:
		default:
			return nil, &OptionError{Path: "debezium.time_precision_mode",
				Message: fmt.Sprintf("unknown mode %q (allowed: adaptive, adaptive_time_microseconds, connect)", dbz.TimePrecisionMode)}
		}
		return &debeziumCodec{opts: dbz, skip: skip, now: time.Now}, nil
	case CodecCloudEvents:
		if ce == (CloudEventsOptions{}) {
			ce = DefaultCloudEventsOptions()
		}
		if strings.ContainsAny(ce.TypePrefix, " \t\"") || strings.HasSuffix(ce.TypePrefix, ".") {
			return nil, &OptionError{Path: "cloudevents.type_prefix", Message: fmt.Sprintf("%q is not a reverse-DNS prefix like io.rivven", ce.TypePrefix)}
		}
		return &cloudEventsCodec{prefix: ce.TypePrefix}, nil
	}
	return nil, &OptionError{Path: "codec", Message: fmt.Sprintf("unknown codec %q (allowed: %s)", name, strings.Join(CodecNames, ", "))}
}

// CodecErrors lists what is wrong with a sink's codec and its options.
// topics says whether the sink can write to a topic of the codec's
// choosing (Kafka), which debezium.schema_changes_topic needs.
func CodecErrors(name string, dbz DebeziumOptions, ce CloudEventsOptions, topics bool) []*OptionError {
	var errs []*OptionError
	if _, err := NewCodec(name, dbz, ce); err != nil {
		var oe *OptionError
		if !errors.As(err, &oe) {
			oe = &OptionError{Path: "codec", Message: err.Error()}
		}
		errs = append(errs, oe)
	}
	if !topics && dbz.TransactionTopic != "" {
		errs = append(errs, &OptionError{Path: "debezium.transaction_topic",
			Message: "this sink cannot write to a second topic; BEGIN/END records are left out of the Debezium stream (the kafka sink can write them to a topic)"})
	}
	if !topics && dbz.SchemaChangesTopic != "" {
		errs = append(errs, &OptionError{Path: "debezium.schema_changes_topic",
			Message: "this sink cannot write to a second topic; schema changes are left out of the Debezium stream (the kafka sink can write them to a topic)"})
	}
	return errs
}
