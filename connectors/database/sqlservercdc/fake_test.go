package sqlservercdc

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"
)

// fakeDB is a SQL Server database with CDC as Microsoft documents it,
// behind the store interface:
//
//   - cdc.change_tables / fn_cdc_get_min_lsn: each capture instance's
//     start_lsn is its low end; cleanup raises it and deletes the change
//     rows below it. A new instance starts at the LSN of its creation.
//   - fn_cdc_get_max_lsn: the highest start_lsn of cdc.lsn_time_mapping,
//     the commit LSN of the last transaction the capture job processed.
//     The job is asynchronous: with lagging set, a commit changes the
//     table at once but reaches the change tables and the mapping only
//     when the job runs (after each read of the max LSN, so a reader
//     sees it on its next read). In a quiet period the job adds a mapping entry
//     without change rows ("Entries may also be logged for which there
//     are no change tables entries", cdc.lsn_time_mapping's page).
//   - fn_cdc_map_lsn_to_time: the entry's tran_end_time, the server's
//     local time (clock, advanced one second by each commit and each
//     Capture read); __$commit_time carries it with the server's offset
//     (tz), as changesSQL asks for.
//   - fn_cdc_get_all_changes_<instance>(from, to, N'all update old'):
//     __$start_lsn (commit LSN), __$seqval, __$operation (1 delete, 2
//     insert, 3 before and 4 after an update), __$update_mask, then the
//     captured columns, ordered by __$start_lsn, __$seqval; a from below
//     the instance's low end or a to above the max LSN fails with error
//     313, as the function does.
//
// Values are the Go values go-mssqldb scans into any: int64, []byte for
// binary(10) LSNs, decimals and money, time.Time, string.
type fakeDB struct {
	mu        sync.Mutex
	cdcOn     bool
	tables    map[string]*fakeTable
	instances []*fakeInstance
	max       lsn
	maxTime   time.Time
	clock     time.Time      // the server's local time, as go-mssqldb returns datetime (UTC location, local wall clock)
	tz        *time.Location // the server's UTC offset
	lagging   bool           // the capture job runs only after each read of the max LSN
	scanning  bool           // with lagging: a run captures what was committed before the previous run (see captureJob)
	seen      int            // pending transactions the previous run's scan got to
	pending   []*tx          // committed, not yet captured
	times     map[lsn]time.Time
	counter   uint64
	closed    int
	opens     int
	failNext  error // returned by the next query
}

type fakeTable struct {
	name    string
	cols    []column
	key     []string
	rows    [][]any
	tracked bool
}

type fakeInstance struct {
	name, table string
	cols        []string
	index       []string
	min         lsn
	rows        []fakeChange
	readable    bool
}

type fakeChange struct {
	at   point
	op   int
	vals []any
}

func newFake() *fakeDB {
	return &fakeDB{cdcOn: true, tables: map[string]*fakeTable{}, times: map[lsn]time.Time{},
		clock: time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC), tz: time.FixedZone("+05:30", 5*3600+1800)}
}

// captureJob is one run of the capture job: the pending transactions go
// to the change tables and the mapping, in log order; with nothing to
// capture it logs an entry of its own at the current time.
//
// With scanning, a run captures only what was committed before the
// previous run (its log scan reached that far), and an entry of its own
// stands for the log position its scan reached, just before the first
// commit it did not get to, while its time is when it was logged, half a
// second after the run began: a quiet-period entry can have a time after
// a commit it does not cover.
func (f *fakeDB) captureJob() {
	n := len(f.pending)
	if f.scanning {
		n = min(n, f.seen)
	}
	for _, x := range f.pending[:n] {
		x.apply()
	}
	f.pending = f.pending[n:]
	f.seen = len(f.pending)
	if n > 0 {
		return
	}
	at, when := f.next(), f.clock
	if f.scanning {
		when = when.Add(500 * time.Millisecond)
		if len(f.pending) > 0 {
			at = before(f.pending[0].at)
		}
	}
	if at.cmp(f.max) > 0 && f.maxTime.Before(when) {
		f.max, f.maxTime = at, when
		f.times[at] = when
	}
}

// before is the LSN just below l (next leaves gaps for it).
func before(l lsn) lsn {
	binary.BigEndian.PutUint16(l[8:10], 0)
	return l
}

// next returns a new LSN, higher than every one before.
func (f *fakeDB) next() lsn {
	f.counter++
	var l lsn
	binary.BigEndian.PutUint32(l[0:4], 0x2a)
	binary.BigEndian.PutUint32(l[4:8], uint32(f.counter))
	binary.BigEndian.PutUint16(l[8:10], 1)
	return l
}

func (f *fakeDB) addTable(name string, cols []column, key []string) *fakeTable {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTable{name: name, cols: cols, key: key}
	f.tables[name] = t
	return t
}

// enable is sys.sp_cdc_enable_table: a capture instance of the table's
// current columns, starting now.
func (f *fakeDB) enable(table, instance string, captured ...string) *fakeInstance {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.tables[table]
	t.tracked = true
	ci := &fakeInstance{name: instance, table: table, index: t.key, min: f.next(), readable: true, cols: captured}
	if len(captured) == 0 {
		for _, c := range t.cols {
			ci.cols = append(ci.cols, c.Name)
		}
	}
	f.instances = append(f.instances, ci)
	return ci
}

// disable drops a capture instance.
func (f *fakeDB) disable(instance string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.instances = slices.DeleteFunc(f.instances, func(ci *fakeInstance) bool { return ci.name == instance })
}

// addColumn is ALTER TABLE ADD: existing rows get NULL; capture
// instances keep capturing the columns they had.
func (f *fakeDB) addColumn(table string, c column) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.tables[table]
	t.cols = append(t.cols, c)
	for i := range t.rows {
		t.rows[i] = append(t.rows[i], nil)
	}
}

// cleanup is sys.sp_cdc_cleanup_change_table: the low end moves to to,
// rows below it are gone.
func (f *fakeDB) cleanup(instance string, to lsn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ci := range f.instances {
		if ci.name == instance {
			ci.min = to
			ci.rows = slices.DeleteFunc(ci.rows, func(c fakeChange) bool { return c.at.LSN.cmp(to) < 0 })
		}
	}
}

// tx is one transaction: its changes are captured with one commit LSN
// and increasing sequence values.
type tx struct {
	f    *fakeDB
	at   lsn
	time time.Time
	seq  uint64
	rows []capturedRow
}

type capturedRow struct {
	ci *fakeInstance
	c  fakeChange
}

func (f *fakeDB) commit(fn func(*tx)) lsn {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.clock = f.clock.Add(time.Second)
	t := &tx{f: f, at: f.next(), time: f.clock}
	fn(t)
	if f.lagging {
		f.pending = append(f.pending, t)
	} else {
		t.apply()
	}
	return t.at
}

// apply writes a captured transaction's change rows and its mapping
// entry.
func (x *tx) apply() {
	for _, r := range x.rows {
		r.ci.rows = append(r.ci.rows, r.c)
	}
	x.f.times[x.at] = x.time
	x.f.max, x.f.maxTime = x.at, x.time
}

func (x *tx) capture(table string, op int, row []any) {
	x.seq++
	var seq lsn
	binary.BigEndian.PutUint32(seq[0:4], 0x2a)
	binary.BigEndian.PutUint64(seq[2:10], x.seq)
	t := x.f.tables[table]
	for _, ci := range x.f.instances {
		if ci.table != table {
			continue
		}
		vals := make([]any, len(ci.cols))
		for i, name := range ci.cols {
			for j, c := range t.cols {
				if c.Name == name && j < len(row) {
					vals[i] = row[j]
				}
			}
		}
		x.rows = append(x.rows, capturedRow{ci: ci, c: fakeChange{at: point{LSN: x.at, Seq: seq}, op: op, vals: vals}})
	}
}

func (x *tx) insert(table string, row ...any) {
	t := x.f.tables[table]
	t.rows = append(t.rows, row)
	x.capture(table, 2, row)
}

func (x *tx) update(table string, row ...any) {
	t := x.f.tables[table]
	i := t.find(row)
	old := t.rows[i]
	t.rows[i] = row
	x.capture(table, 3, old)
	// Both images of an update share the sequence value.
	x.seq--
	x.capture(table, 4, row)
}

func (x *tx) delete(table string, key ...any) {
	t := x.f.tables[table]
	i := t.find(key)
	old := t.rows[i]
	t.rows = slices.Delete(t.rows, i, i+1)
	x.capture(table, 1, old)
}

// find is the index of the row whose key columns (the leading columns of
// row) match.
func (t *fakeTable) find(row []any) int {
	for i, r := range t.rows {
		match := true
		for k := range t.key {
			if cmpValue(r[t.keyIndex(k)], row[t.keyIndex(k)]) != 0 {
				match = false
			}
		}
		if match {
			return i
		}
	}
	panic(fmt.Sprintf("no row %v in %s", row, t.name))
}

func (t *fakeTable) keyIndex(k int) int {
	for i, c := range t.cols {
		if c.Name == t.key[k] {
			return i
		}
	}
	panic("no key column")
}

// ---- store ----

func (f *fakeDB) fail() error {
	if err := f.failNext; err != nil {
		f.failNext = nil
		return err
	}
	return nil
}

func (f *fakeDB) DatabaseCDC(context.Context) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cdcOn, f.fail()
}

func (f *fakeDB) Tables(_ context.Context, _ string) ([]tableRow, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []tableRow
	for _, t := range f.tables {
		out = append(out, tableRow{Name: t.name, TrackedCDC: t.tracked, RowEstimate: int64(len(t.rows))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, f.fail()
}

func (f *fakeDB) CaptureInstances(_ context.Context, _ string) ([]captureInstance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []captureInstance
	for _, ci := range f.instances {
		out = append(out, captureInstance{Name: ci.name, Table: ci.table, MinLSN: ci.min, Index: ci.index, Columns: ci.cols, Readable: ci.readable})
	}
	return out, f.fail()
}

func (f *fakeDB) Columns(_ context.Context, _, table string) ([]column, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.tables[table]
	if t == nil {
		return nil, fmt.Errorf("no table %s", table)
	}
	return slices.Clone(t.cols), f.fail()
}

func (f *fakeDB) MaxLSN(context.Context) (lsn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.max
	if f.lagging {
		f.captureJob()
	}
	return m, f.fail()
}

func (f *fakeDB) Capture(context.Context) (captureState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.clock = f.clock.Add(time.Second)
	if !f.lagging {
		f.captureJob()
	}
	c := captureState{Max: f.max, MaxTime: f.maxTime, Now: f.clock}
	if f.lagging {
		f.captureJob()
	}
	return c, f.fail()
}

// errInsufficient is the error fn_cdc_get_all_changes_ raises for an LSN
// range outside what the capture instance holds.
var errInsufficient = errors.New("mssql: Msg 313: An insufficient number of arguments were supplied for the procedure or function cdc.fn_cdc_get_all_changes_<instance>")

func (f *fakeDB) Changes(_ context.Context, instance string, from, to lsn) (*resultSet, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail(); err != nil {
		return nil, err
	}
	var ci *fakeInstance
	for _, c := range f.instances {
		if c.name == instance {
			ci = c
		}
	}
	if ci == nil {
		return nil, fmt.Errorf("mssql: Invalid object name 'cdc.fn_cdc_get_all_changes_%s'", instance)
	}
	if from.cmp(ci.min) < 0 || to.cmp(f.max) > 0 || from.cmp(to) > 0 {
		return nil, errInsufficient
	}
	rs := &resultSet{Cols: append(append([]string{colStartLSN, colSeqval, colOp, colMask}, ci.cols...), colCommitTime)}
	for _, c := range ci.rows {
		if c.at.LSN.cmp(from) < 0 || c.at.LSN.cmp(to) > 0 {
			continue
		}
		l, s := c.at.LSN, c.at.Seq
		row := append([]any{l[:], s[:], int64(c.op), []byte{0xff}}, c.vals...)
		w := f.times[c.at.LSN]
		row = append(row, time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), w.Nanosecond(), f.tz))
		rs.Rows = append(rs.Rows, row)
	}
	sort.SliceStable(rs.Rows, func(i, j int) bool {
		a, b := rs.Rows[i], rs.Rows[j]
		if c := bytes.Compare(a[0].([]byte), b[0].([]byte)); c != 0 {
			return c < 0
		}
		if c := bytes.Compare(a[1].([]byte), b[1].([]byte)); c != 0 {
			return c < 0
		}
		return a[2].(int64) < b[2].(int64)
	})
	return rs, nil
}

func (f *fakeDB) Chunk(_ context.Context, q chunkQuery) (*resultSet, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail(); err != nil {
		return nil, err
	}
	t := f.tables[q.Table]
	idx := make([]int, len(q.Cols))
	for i, name := range q.Cols {
		idx[i] = -1
		for j, c := range t.cols {
			if c.Name == name {
				idx[i] = j
			}
		}
		if idx[i] < 0 {
			return nil, fmt.Errorf("mssql: Invalid column name '%s'", name)
		}
	}
	rows := slices.Clone(t.rows)
	keyIdx := make([]int, len(q.Key))
	for k := range q.Key {
		for j, c := range t.cols {
			if c.Name == q.Key[k] {
				keyIdx[k] = j
			}
		}
	}
	cmpKey := func(r []any, other []any) int {
		for k, j := range keyIdx {
			if c := cmpValue(r[j], other[k]); c != 0 {
				return c
			}
		}
		return 0
	}
	sort.SliceStable(rows, func(a, b int) bool {
		kb := make([]any, len(keyIdx))
		for k, j := range keyIdx {
			kb[k] = rows[b][j]
		}
		return cmpKey(rows[a], kb) < 0
	})
	rs := &resultSet{Cols: q.Cols}
	for _, r := range rows {
		if q.After != nil && cmpKey(r, q.After) <= 0 {
			continue
		}
		if len(q.Key) > 0 && len(rs.Rows) == q.Limit {
			break
		}
		out := make([]any, len(idx))
		for i, j := range idx {
			out[i] = r[j]
		}
		rs.Rows = append(rs.Rows, out)
	}
	return rs, nil
}

func (f *fakeDB) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed++
	return nil
}

// cmpValue compares a stored value with another or with a parameter as
// SQL Server converts it: a string parameter against an int or decimal
// column is converted to the column's type.
func cmpValue(v, p any) int {
	switch x := v.(type) {
	case int64:
		switch y := p.(type) {
		case int64:
			return cmpInt(x, y)
		case string:
			n, err := strconv.ParseInt(y, 10, 64)
			if err != nil {
				panic(fmt.Sprintf("conversion failed when converting the nvarchar value '%s' to data type int", y))
			}
			return cmpInt(x, n)
		}
	case []byte:
		ra, ok := new(big.Rat).SetString(string(x))
		var rb *big.Rat
		switch y := p.(type) {
		case []byte:
			rb, _ = new(big.Rat).SetString(string(y))
		case string:
			rb, _ = new(big.Rat).SetString(y)
		}
		if ok && rb != nil {
			return ra.Cmp(rb)
		}
		if y, isBytes := p.([]byte); isBytes {
			return bytes.Compare(x, y)
		}
	case string:
		if y, ok := p.(string); ok {
			switch {
			case x < y:
				return -1
			case x > y:
				return 1
			}
			return 0
		}
	}
	panic(fmt.Sprintf("fake: cannot compare %T with %T", v, p))
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
