package mysqlcdc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
)

// Binlog event type codes (MySQL and MariaDB share the low range).
const (
	evQuery                       = 2
	evStop                        = 3
	evRotate                      = 4
	evFormatDescription           = 15
	evXID                         = 16
	evTableMap                    = 19
	evWriteRowsV1                 = 23
	evUpdateRowsV1                = 24
	evDeleteRowsV1                = 25
	evHeartbeat                   = 27
	evWriteRowsV2                 = 30
	evUpdateRowsV2                = 31
	evDeleteRowsV2                = 32
	evGTID                        = 33 // MySQL
	evAnonymousGTID               = 34 // MySQL
	evPreviousGTIDs               = 35 // MySQL
	evPartialUpdateRows           = 39 // MySQL partial JSON updates
	evTransactionPayload          = 40 // MySQL binlog_transaction_compression
	evMariaAnnotateRows           = 160
	evMariaCheckpoint             = 161
	evMariaGTID                   = 162
	evMariaGTIDList               = 163
	evMariaStartEncrypt           = 164
	evMariaQueryCompressed        = 165
	evMariaWriteRowsCompressedV1  = 169
	evMariaDeleteRowsCompressedV1 = 171
	evMariaWriteRowsCompressed    = 166
)

const eventHeaderLen = 19

// header is the common binlog event header.
type header struct {
	Timestamp uint32
	Type      byte
	ServerID  uint32
	Size      uint32
	LogPos    uint32 // end position of this event in its file
	Flags     uint16
}

// tableMap is a TABLE_MAP event plus its optional metadata
// (binlog_row_metadata=FULL gives names, signedness, charsets, enum/set
// values and the primary key; MINIMAL gives signedness and charsets).
type tableMap struct {
	ID        uint64
	Schema    string
	Table     string
	Types     []byte
	Meta      []uint16
	Names     []string   // nil when not in the metadata
	Unsigned  []bool     // nil when not in the metadata
	Collation []uint16   // 0 = unknown
	Enums     [][]string // per column; nil when unknown
	Sets      [][]string
	PK        []int // nil when not in the metadata
}

// decoder turns raw binlog events (as sent after the 0x00 OK byte) into
// parsed events. It keeps the format description and the table maps.
type decoder struct {
	checksum   bool // events end with a CRC32
	verifyCRC  bool
	postHeader []byte // post-header length per event type (index type-1)
	tables     map[uint64]*tableMap
	mysqlJSON  bool // type 245 is MySQL binary JSON (false on MariaDB, where JSON is LONGTEXT)
	mariaDB    bool // the server is MariaDB: its SIGNEDNESS metadata counts YEAR columns

	vals  [][2]int // scratch for decodeRowImage
	arena []byte   // row JSON is carved from here (see decodeRowImage)
	// changes is decodeRows' result, reused from one rows event to the
	// next so a rows event costs no slice growth.
	changes []rowChange
}

func newDecoder(checksum bool) *decoder {
	return &decoder{checksum: checksum, verifyCRC: checksum, tables: map[uint64]*tableMap{}, mysqlJSON: true}
}

var errChecksum = errors.New("binlog event checksum mismatch")

// split checks the checksum and returns the header and body.
func (d *decoder) split(raw []byte) (header, []byte, error) {
	var h header
	if len(raw) < eventHeaderLen {
		return h, nil, errShort
	}
	h.Timestamp = binary.LittleEndian.Uint32(raw)
	h.Type = raw[4]
	h.ServerID = binary.LittleEndian.Uint32(raw[5:])
	h.Size = binary.LittleEndian.Uint32(raw[9:])
	h.LogPos = binary.LittleEndian.Uint32(raw[13:])
	h.Flags = binary.LittleEndian.Uint16(raw[17:])
	body := raw[eventHeaderLen:]
	if h.Type == evFormatDescription {
		// The FDE says itself whether checksums are on (its last 5 bytes are
		// the algorithm and the CRC on every server that knows checksums).
		if len(body) < 57+5 {
			return h, nil, errShort
		}
		alg := body[len(body)-5]
		d.checksum = alg == 1
		d.verifyCRC = d.checksum
	}
	if d.checksum {
		if len(body) < 4 {
			return h, nil, errShort
		}
		n := len(raw) - 4
		if d.verifyCRC && crc32.ChecksumIEEE(raw[:n]) != binary.LittleEndian.Uint32(raw[n:]) {
			return h, nil, fmt.Errorf("%w (event type %d at position %d)", errChecksum, h.Type, h.LogPos)
		}
		body = raw[eventHeaderLen:n]
	}
	return h, body, nil
}

func (d *decoder) formatDescription(body []byte) error {
	r := reader{b: body}
	r.skip(2 + 50 + 4)
	hl := r.u8()
	if r.err != nil {
		return r.err
	}
	if hl != eventHeaderLen {
		return fmt.Errorf("unsupported binlog event header length %d", hl)
	}
	end := len(body)
	if !d.checksum {
		end -= 5 // algorithm byte + CRC placeholder
	} else {
		end -= 1 // the CRC was already cut off; the algorithm byte remains
	}
	if end < r.i {
		return errShort
	}
	d.postHeader = append(d.postHeader[:0], body[r.i:end]...)
	return nil
}

func (d *decoder) postHeaderLen(t byte, def int) int {
	if int(t) >= 1 && int(t) <= len(d.postHeader) {
		return int(d.postHeader[t-1])
	}
	return def
}

// rotate parses a ROTATE event: the next file and position.
func rotate(body []byte) (string, uint64, error) {
	if len(body) < 8 {
		return "", 0, errShort
	}
	return string(body[8:]), binary.LittleEndian.Uint64(body), nil
}

// queryEvent is the part of a QUERY event we use.
type queryEvent struct {
	Schema string
	Query  string
}

func (d *decoder) query(body []byte) (queryEvent, error) {
	ph := d.postHeaderLen(evQuery, 13)
	r := reader{b: body}
	r.skip(8)
	dbLen := int(r.u8())
	r.skip(2)
	statusLen := 0
	if ph >= 13 {
		statusLen = int(r.u16())
	}
	r.i = ph
	r.skip(statusLen)
	db := r.bytes(dbLen)
	r.skip(1)
	q := r.rest()
	if r.err != nil {
		return queryEvent{}, r.err
	}
	return queryEvent{Schema: string(db), Query: string(q)}, nil
}

// parseMariaGTIDEvent parses a MariaDB GTID event: domain and sequence; the server id
// is in the header. standalone is set for DDL and other statements that are
// not wrapped in BEGIN/COMMIT.
func parseMariaGTIDEvent(body []byte) (seq uint64, domain uint32, standalone bool, err error) {
	r := reader{b: body}
	seq = r.u64()
	domain = r.u32()
	flags := r.u8()
	return seq, domain, flags&1 != 0, r.err
}

// parseMySQLGTIDEvent parses a MySQL GTID event: source uuid and transaction number.
func parseMySQLGTIDEvent(body []byte) (uuid [16]byte, gno int64, err error) {
	r := reader{b: body}
	r.skip(1)
	copy(uuid[:], r.bytes(16))
	gno = int64(r.u64())
	return uuid, gno, r.err
}

func (d *decoder) tableMap(body []byte) (*tableMap, error) {
	r := reader{b: body}
	tm := &tableMap{}
	if d.postHeaderLen(evTableMap, 8) == 6 {
		tm.ID = uint64(r.u32())
	} else {
		tm.ID = r.uN(6)
	}
	r.skip(2)
	tm.Schema = string(r.bytes(int(r.u8())))
	r.skip(1)
	tm.Table = string(r.bytes(int(r.u8())))
	r.skip(1)
	n := r.lenenc()
	if r.err != nil {
		return nil, r.err
	}
	if n > uint64(len(body)) {
		return nil, errShort
	}
	tm.Types = append([]byte(nil), r.bytes(int(n))...)
	meta := reader{b: r.lenencBytes()}
	r.skip(int((n + 7) / 8)) // nullability
	if r.err != nil {
		return nil, r.err
	}
	tm.Meta = make([]uint16, n)
	for i, t := range tm.Types {
		switch t {
		case typeFloat, typeDouble, typeBlob, typeGeometry, typeJSON, typeTimestamp2, typeDatetime2, typeTime2,
			typeTinyBlob, typeMediumBlob, typeLongBlob:
			tm.Meta[i] = uint16(meta.u8())
		case typeVarchar, typeVarString:
			tm.Meta[i] = meta.u16()
		case typeString, typeNewDecimal, typeEnum, typeSet, typeBit:
			hi := meta.u8()
			lo := meta.u8()
			tm.Meta[i] = uint16(hi)<<8 | uint16(lo)
		}
	}
	if meta.err != nil {
		return nil, fmt.Errorf("table map metadata: %w", meta.err)
	}
	if err := tm.optionalMetadata(r.rest(), d.mariaDB); err != nil {
		return nil, fmt.Errorf("table map optional metadata: %w", err)
	}
	return tm, nil
}

// realType resolves MYSQL_TYPE_STRING's metadata to the real type (ENUM and
// SET are logged as STRING) and the length in bytes.
func realType(t byte, meta uint16) (byte, int) {
	if t != typeString {
		return t, int(meta)
	}
	if meta < 256 {
		return t, int(meta)
	}
	b0, b1 := byte(meta>>8), int(meta&0xff)
	if b0&0x30 != 0x30 {
		return b0 | 0x30, b1 | int((b0&0x30)^0x30)<<4
	}
	return b0, b1
}

// isNumericType reports whether the SIGNEDNESS metadata has a bit for a
// column of type t. MariaDB gives YEAR one too (its YEAR field is a
// TINYINT UNSIGNED underneath), and counting it wrong moves the bits of
// every later column: a signed TINYINT after a YEAR would read as
// unsigned.
func isNumericType(t byte, mariaDB bool) bool {
	switch t {
	case typeTiny, typeShort, typeInt24, typeLong, typeLongLong, typeNewDecimal, typeFloat, typeDouble, typeDecimal:
		return true
	case typeYear:
		return mariaDB
	}
	return false
}

func (tm *tableMap) isCharacter(i int) bool {
	t, _ := realType(tm.Types[i], tm.Meta[i])
	switch t {
	case typeString, typeVarString, typeVarchar, typeBlob, typeTinyBlob, typeMediumBlob, typeLongBlob:
		return true
	}
	return false
}

func (tm *tableMap) isEnumSet(i int) (enum, set bool) {
	t, _ := realType(tm.Types[i], tm.Meta[i])
	return t == typeEnum, t == typeSet
}

func (tm *tableMap) optionalMetadata(b []byte, mariaDB bool) error {
	n := len(tm.Types)
	r := reader{b: b}
	for r.i < len(r.b) && r.err == nil {
		kind := r.u8()
		v := reader{b: r.lenencBytes()}
		if r.err != nil {
			return r.err
		}
		switch kind {
		case 1: // SIGNEDNESS: one bit per numeric column, most significant first
			tm.Unsigned = make([]bool, n)
			k := 0
			for i, t := range tm.Types {
				if !isNumericType(t, mariaDB) {
					continue
				}
				if k/8 < len(v.b) {
					tm.Unsigned[i] = v.b[k/8]&(0x80>>(k%8)) != 0
				}
				k++
			}
		case 2, 10: // DEFAULT_CHARSET, ENUM_AND_SET_DEFAULT_CHARSET
			if tm.Collation == nil {
				tm.Collation = make([]uint16, n)
			}
			def := uint16(v.lenenc())
			pick := tm.isCharacter
			if kind == 10 {
				pick = func(i int) bool { e, s := tm.isEnumSet(i); return e || s }
			}
			for i := range n {
				if pick(i) {
					tm.Collation[i] = def
				}
			}
			for v.i < len(v.b) && v.err == nil {
				idx := v.lenenc()
				coll := uint16(v.lenenc())
				// idx counts only columns of the picked kind.
				k := uint64(0)
				for i := range n {
					if pick(i) {
						if k == idx {
							tm.Collation[i] = coll
							break
						}
						k++
					}
				}
			}
		case 3, 11: // COLUMN_CHARSET, ENUM_AND_SET_COLUMN_CHARSET
			if tm.Collation == nil {
				tm.Collation = make([]uint16, n)
			}
			for i := range n {
				pick := tm.isCharacter(i)
				if kind == 11 {
					e, s := tm.isEnumSet(i)
					pick = e || s
				}
				if pick {
					tm.Collation[i] = uint16(v.lenenc())
				}
			}
		case 4: // COLUMN_NAME
			tm.Names = make([]string, 0, n)
			for range n {
				tm.Names = append(tm.Names, string(v.lenencBytes()))
			}
		case 5, 6: // SET_STR_VALUE, ENUM_STR_VALUE
			vals := make([][]string, n)
			for i := range n {
				e, s := tm.isEnumSet(i)
				if (kind == 6 && !e) || (kind == 5 && !s) {
					continue
				}
				cnt := v.lenenc()
				if cnt > uint64(len(v.b)) {
					return errShort
				}
				names := make([]string, 0, cnt)
				for range cnt {
					names = append(names, string(v.lenencBytes()))
				}
				vals[i] = names
			}
			if kind == 6 {
				tm.Enums = vals
			} else {
				tm.Sets = vals
			}
		case 8: // SIMPLE_PRIMARY_KEY
			tm.PK = []int{}
			for v.i < len(v.b) && v.err == nil {
				tm.PK = append(tm.PK, int(v.lenenc()))
			}
		case 9: // PRIMARY_KEY_WITH_PREFIX
			tm.PK = []int{}
			for v.i < len(v.b) && v.err == nil {
				tm.PK = append(tm.PK, int(v.lenenc()))
				v.lenenc()
			}
		}
		if v.err != nil {
			return v.err
		}
		for _, p := range tm.PK {
			if p < 0 || p >= n {
				return fmt.Errorf("primary key column %d out of range", p)
			}
		}
		if tm.Names != nil && len(tm.Names) != n {
			return errShort
		}
	}
	return r.err
}

// rowsKind is what a rows event does.
type rowsKind byte

const (
	rowsInsert rowsKind = iota + 1
	rowsUpdate
	rowsDelete
)

func rowsKindOf(t byte) (rowsKind, bool) {
	switch t {
	case evWriteRowsV1, evWriteRowsV2:
		return rowsInsert, true
	case evUpdateRowsV1, evUpdateRowsV2:
		return rowsUpdate, true
	case evDeleteRowsV1, evDeleteRowsV2:
		return rowsDelete, true
	}
	return 0, false
}

// rowsHeader is the fixed part of a rows event; Data holds the row images.
type rowsHeader struct {
	TableID  uint64
	Kind     rowsKind
	NCols    int
	Present  []byte // columns-present bitmap (before image for updates)
	Present2 []byte // after image bitmap for updates
	Data     []byte
}

func (d *decoder) rowsHeader(t byte, body []byte) (rowsHeader, error) {
	var rh rowsHeader
	kind, ok := rowsKindOf(t)
	if !ok {
		return rh, fmt.Errorf("not a rows event: %d", t)
	}
	rh.Kind = kind
	r := reader{b: body}
	if d.postHeaderLen(t, 8) == 6 {
		rh.TableID = uint64(r.u32())
	} else {
		rh.TableID = r.uN(6)
	}
	r.skip(2) // flags
	if t >= evWriteRowsV2 && t <= evDeleteRowsV2 {
		extra := int(r.u16())
		r.skip(extra - 2)
	}
	n := r.lenenc()
	if r.err != nil {
		return rh, r.err
	}
	if n == 0 || n > 4096 {
		return rh, fmt.Errorf("bad column count %d", n)
	}
	rh.NCols = int(n)
	bm := int((n + 7) / 8)
	rh.Present = r.bytes(bm)
	if kind == rowsUpdate {
		rh.Present2 = r.bytes(bm)
	}
	rh.Data = r.rest()
	return rh, r.err
}

func bit(bm []byte, i int) bool { return bm[i/8]&(1<<(i%8)) != 0 }

// isDDL reports whether a QUERY event statement changes a schema (so the
// schema cache must be refreshed and a schema event emitted).
func isDDL(q string) bool {
	q = strings.TrimSpace(stripComments(q))
	w := strings.ToUpper(firstWord(q))
	switch w {
	case "CREATE", "ALTER", "DROP", "RENAME", "TRUNCATE":
		return true
	}
	return false
}

func firstWord(s string) string {
	for i, c := range s {
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '(' {
			return s[:i]
		}
	}
	return s
}

// stripComments removes leading /* ... */ and -- comments (MariaDB writes
// some DDL with a leading version comment).
func stripComments(s string) string {
	for {
		s = strings.TrimLeft(s, " \t\r\n")
		switch {
		case strings.HasPrefix(s, "/*") && !strings.HasPrefix(s, "/*!"):
			i := strings.Index(s, "*/")
			if i < 0 {
				return ""
			}
			s = s[i+2:]
		case strings.HasPrefix(s, "/*!"):
			// executable comment: keep its content, drop the version number
			s = strings.TrimLeft(s[3:], "0123456789")
			if i := strings.Index(s, "*/"); i >= 0 {
				s = s[:i] + s[i+2:]
			}
		case strings.HasPrefix(s, "-- "), strings.HasPrefix(s, "#"):
			i := strings.IndexByte(s, '\n')
			if i < 0 {
				return ""
			}
			s = s[i+1:]
		default:
			return s
		}
	}
}
