package bigquery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"cloud.google.com/go/bigquery/storage/apiv1/storagepb"
	"cloud.google.com/go/bigquery/storage/managedwriter"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/resilience"
)

// Exactly once: the sink appends to one COMMITTED write stream at
// explicit offsets. The stream's offset is the position: an append at an
// offset the stream already holds is refused with ALREADY_EXISTS, and one
// past its end with OUT_OF_RANGE, so an append either happens once or
// not at all, and a retry is recognized.
//
// Before a batch is appended, the state store (Redis, the engine's
// settings.state) gets the record below: the stream, the offset the
// batch goes to, the batch's serialized rows, and the delivery ids of
// the last batches. It is put under the sink's state name before each
// append, so whatever happens after, the store says what the stream may
// hold:
//
//   - on start (and after a failed append) the recorded rows are appended
//     again at the recorded offset: OK or ALREADY_EXISTS both mean they
//     are now in the table, exactly once, and the next batch goes after
//     them;
//   - a redelivered record (the trigger had not been acknowledged when
//     the process died) whose delivery id the record names is then
//     recognized and not appended again.
//
// One writer per stream: the long-lived `run sink` is fenced by its
// epoch; a function host must run one instance for exactly_once.

// maxRememberedIDs bounds the delivery ids the record keeps (the last
// batches'); a redelivery comes within a few batches of its write.
const maxRememberedIDs = 20000

// record is what the state store keeps.
type record struct {
	Stream string   `json:"stream"`
	Offset int64    `json:"offset"`           // where Rows go (or went)
	Rows   [][]byte `json:"rows,omitempty"`   // the last batch, serialized
	Schema []byte   `json:"schema,omitempty"` // the DescriptorProto Rows are in
	IDs    []string `json:"ids,omitempty"`    // delivery ids of the last batches, oldest first
}

type onceState struct {
	rec      record
	resolved bool            // rec.Rows are known to be in the stream
	seen     map[string]bool // rec.IDs
}

func (s *Sink) stateKey() string {
	return "bigquery:" + s.cfg.ProjectID + "." + s.cfg.Dataset + "." + s.cfg.Table
}

func (s *Sink) persist(ctx context.Context, rec record) error {
	if s.state == nil {
		return nil
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := s.state.Put(ctx, s.stateKey(), b); err != nil {
		return resilience.New(resilience.Connection, fmt.Errorf("state store: %w", err))
	}
	return nil
}

// resolve loads the record once and makes sure the rows it names are in
// the stream (appending them again at their offset). s.mu is held.
func (s *Sink) resolve(ctx context.Context, ti *tableInfo) error {
	if s.once == nil {
		st := &onceState{seen: map[string]bool{}}
		if s.state != nil {
			b, err := s.state.Get(ctx, s.stateKey())
			if err != nil {
				return resilience.New(resilience.Connection, fmt.Errorf("state store: %w", err))
			}
			if len(b) > 0 {
				if err := json.Unmarshal(b, &st.rec); err != nil {
					return connector.Fatal(fmt.Errorf("state store: the record under %s is not this sink's: %w", s.stateKey(), err))
				}
			}
		}
		for _, id := range st.rec.IDs {
			st.seen[id] = true
		}
		st.resolved = st.rec.Stream == ""
		s.once = st
	}
	st := s.once
	if st.resolved {
		return nil
	}
	if s.stream == nil {
		gctx, cancel := context.WithTimeout(ctx, s.timeout())
		_, err := s.mwc.GetWriteStream(gctx, &storagepb.GetWriteStreamRequest{Name: st.rec.Stream})
		cancel()
		switch {
		case status.Code(err) == codes.NotFound:
			// The service dropped the stream (streams unused for days are
			// garbage collected): whether the recorded rows reached it
			// cannot be known any more. They are appended to a new stream;
			// this one batch may then be in the table twice.
			s.log("bigquery: the committed stream of the last batch is gone; appending that batch again on a new stream (it may be in the table twice)", "stream", st.rec.Stream)
			ms, err := s.openStream(ctx, ti, "")
			if err != nil {
				return err
			}
			s.stream = ms
			st.rec.Stream, st.rec.Offset = ms.StreamName(), 0
			if err := s.persist(ctx, st.rec); err != nil {
				return err
			}
		case err != nil:
			return fmt.Errorf("committed stream %s: %w", st.rec.Stream, classify(err))
		default:
			ms, err := s.openStream(ctx, ti, st.rec.Stream)
			if err != nil {
				return err
			}
			s.stream = ms
		}
	}
	if len(st.rec.Rows) > 0 {
		var opts []managedwriter.AppendOption
		if cur, _ := proto.Marshal(ti.dp); len(st.rec.Schema) > 0 && string(cur) != string(st.rec.Schema) {
			// The rows were encoded for an older schema of the table: send
			// them in it; the next append switches back (streamDP).
			old := new(descriptorpb.DescriptorProto)
			if err := proto.Unmarshal(st.rec.Schema, old); err == nil {
				opts = append(opts, managedwriter.UpdateSchemaDescriptor(old))
				s.streamDP = old
			}
		}
		orig := make([]int, len(st.rec.Rows))
		for i := range orig {
			orig[i] = i
		}
		if _, err := s.appendAt(ctx, &st.rec, orig, opts...); err != nil {
			return err
		}
	}
	st.resolved = true
	for _, id := range st.rec.IDs {
		st.seen[id] = true
	}
	return nil
}

// appendAt appends rec.Rows at rec.Offset, chunk by chunk: a chunk the
// stream already holds (ALREADY_EXISTS) counts as written. Rows the
// service refuses are taken out of rec (persisted again before the rest
// is sent) and returned by their orig index.
func (s *Sink) appendAt(ctx context.Context, rec *record, orig []int, opts ...managedwriter.AppendOption) (map[int]error, error) {
	refused := map[int]error{}
	from := 0
	for from < len(rec.Rows) {
		var ch [2]int
		for _, c := range chunks(rec.Rows) {
			if c[0] == from {
				ch = c
				break
			}
		}
		bad, err := s.send(ctx, rec.Rows[ch[0]:ch[1]], rec.Offset+int64(ch[0]), opts...)
		switch {
		case errors.Is(err, errAlreadyExists), err == nil && len(bad) == 0:
			from = ch[1]
			continue
		case errors.Is(err, errOutOfRange):
			return refused, connector.Fatal(fmt.Errorf("the state store says %s holds %d rows, but the stream is shorter: another writer or an old state record (key %s)", rec.Stream, rec.Offset+int64(ch[0]), s.stateKey()))
		case err != nil:
			return refused, err
		}
		// Nothing of the chunk was written: drop the refused rows and
		// send the rest at the same offset.
		rows, keep := rec.Rows[:ch[0]:ch[0]], orig[:ch[0]:ch[0]]
		for k := ch[0]; k < len(rec.Rows); k++ {
			if e, ok := bad[k-ch[0]]; ok {
				refused[orig[k]] = e
				continue
			}
			rows, keep = append(rows, rec.Rows[k]), append(keep, orig[k])
		}
		rec.Rows, orig = rows, keep
		if err := s.persist(ctx, *rec); err != nil {
			return refused, err
		}
	}
	return refused, nil
}

// appendOnce appends a batch at the stream's next offset. s.mu is held
// and resolve has run.
func (s *Sink) appendOnce(ctx context.Context, ti *tableInfo, rows [][]byte, ids []string) (map[int]error, error) {
	st := s.once
	next := st.rec.Offset + int64(len(st.rec.Rows))
	if s.stream == nil {
		ms, err := s.openStream(ctx, ti, "")
		if err != nil {
			return nil, err
		}
		s.stream = ms
		st.rec.Stream, next = ms.StreamName(), 0
	}
	schema, err := proto.Marshal(ti.dp)
	if err != nil {
		return nil, connector.Fatal(err)
	}
	remembered := st.rec.IDs
	for _, id := range ids {
		if id != "" {
			remembered = append(remembered, id)
		}
	}
	if n := len(remembered) - maxRememberedIDs; n > 0 {
		remembered = remembered[n:]
	}
	rec := record{Stream: st.rec.Stream, Offset: next, Rows: rows, Schema: schema, IDs: remembered}
	if err := s.persist(ctx, rec); err != nil {
		return nil, err
	}
	st.rec, st.resolved = rec, false
	orig := make([]int, len(rows))
	for i := range orig {
		orig[i] = i
	}
	refused, err := s.appendAt(ctx, &st.rec, orig)
	if err != nil {
		// The next Write first appends st.rec.Rows again at their offset.
		return refused, err
	}
	st.resolved = true
	st.seen = make(map[string]bool, len(remembered))
	for _, id := range remembered {
		st.seen[id] = true
	}
	return refused, nil
}
