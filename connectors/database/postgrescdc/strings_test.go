package postgrescdc

import (
	"bytes"
	"testing"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/rivven/rivven-connect/connectors/database/cdc/cdctest"
)

// TestStringValuesMatchGolden: a text column's value is written with the
// bytes every CDC source writes (cdctest's golden text, which mysql-cdc is
// held to as well), from the snapshot and from the stream.
func TestStringValuesMatchGolden(t *testing.T) {
	types := newTypeCache(nil)
	cols := []column{{Name: "s", OID: pgtype.TextOID}}
	st := &streamer{types: types}
	for _, tc := range cdctest.StringCases(t) {
		want := `{"s":` + string(tc.Want) + `}`
		if got := appendRow(nil, types, cols, [][]byte{[]byte(tc.In)}); string(got) != want {
			t.Errorf("%q snapshot: %s, want %s", tc.In, got, want)
		}
		for _, oid := range []uint32{pgtype.TextOID, pgtype.VarcharOID, pgtype.BPCharOID} {
			got := st.appendColumn(nil, oid, &pglogrepl.TupleDataColumn{DataType: pglogrepl.TupleDataTypeText, Data: []byte(tc.In)})
			if !bytes.Equal(got, tc.Want) {
				t.Errorf("%q streamed as type %d: %s, want %s", tc.In, oid, got, tc.Want)
			}
		}
	}
}
