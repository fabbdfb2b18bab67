package mysqlcdc

import (
	"bufio"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// A small MySQL client/server protocol implementation: handshake (with
// mysql_native_password and caching_sha2_password), optional TLS, COM_QUERY
// with text result sets and the replication commands. It is written here
// rather than taken from a driver because the binlog stream needs raw packet
// access that database/sql drivers do not expose, and one connection type
// for both keeps the snapshot transaction and the stream start on the same
// code path.

const (
	capLongPassword     = 0x00000001
	capLongFlag         = 0x00000004
	capConnectWithDB    = 0x00000008
	capProtocol41       = 0x00000200
	capSSL              = 0x00000800
	capTransactions     = 0x00002000
	capSecureConnection = 0x00008000
	capMultiResults     = 0x00020000
	capPluginAuth       = 0x00080000
	capPluginAuthLenenc = 0x00200000

	collationUTF8MB4 = 45 // utf8mb4_general_ci: every server version knows it

	maxPacket = 1<<24 - 1
)

// ServerError is an ERR packet from the server.
type ServerError struct {
	Code    uint16
	State   string
	Message string
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("mysql error %d (%s): %s", e.Code, e.State, e.Message)
}

func parseErrPacket(p []byte) error {
	if len(p) < 3 {
		return &ServerError{Message: "malformed error packet"}
	}
	e := &ServerError{Code: binary.LittleEndian.Uint16(p[1:3])}
	rest := p[3:]
	if len(rest) >= 6 && rest[0] == '#' {
		e.State = string(rest[1:6])
		rest = rest[6:]
	}
	e.Message = string(rest)
	return e
}

// connParams is what dial needs.
type connParams struct {
	Addr     string
	User     string
	Password string
	Database string
	TLS      *tls.Config // nil: plain
	// TLSRequired fails the connect when the server does not offer TLS
	// (modes require, verify-ca, verify-full); otherwise TLS is used only
	// when offered (prefer).
	TLSRequired bool
	Timeout     time.Duration
}

// conn is one client connection.
type conn struct {
	nc            net.Conn
	br            *bufio.Reader
	seq           byte
	serverVersion string
	connID        uint32
	caps          uint32
	hdr           [4]byte
	pbuf          []byte // reused by readPacketReuse
}

// isMariaDB reports whether the server is MariaDB (GTID format, capability
// handshake and snapshot status variables differ from MySQL).
func (c *conn) isMariaDB() bool { return strings.Contains(strings.ToLower(c.serverVersion), "mariadb") }

func dial(ctx context.Context, p connParams) (*conn, error) {
	d := net.Dialer{Timeout: p.Timeout, KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", p.Addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		// A large receive buffer lets the server stream the binlog ahead
		// of decoding instead of stalling on a full window.
		_ = tc.SetReadBuffer(4 << 20)
	}
	c := &conn{nc: nc, br: bufio.NewReaderSize(nc, 64<<10)}
	if p.Timeout > 0 {
		_ = nc.SetDeadline(time.Now().Add(p.Timeout))
	}
	if err := c.handshake(p); err != nil {
		_ = nc.Close()
		return nil, err
	}
	_ = nc.SetDeadline(time.Time{})
	return c, nil
}

func (c *conn) Close() error { return c.nc.Close() }

// readPacket reads one logical packet (joining 16 MiB continuation parts).
func (c *conn) readPacket() ([]byte, error) {
	var out []byte
	for {
		if _, err := io.ReadFull(c.br, c.hdr[:]); err != nil {
			return nil, err
		}
		n := int(uint32(c.hdr[0]) | uint32(c.hdr[1])<<8 | uint32(c.hdr[2])<<16)
		c.seq = c.hdr[3] + 1
		if out == nil && n < maxPacket {
			buf := make([]byte, n)
			if _, err := io.ReadFull(c.br, buf); err != nil {
				return nil, err
			}
			return buf, nil
		}
		start := len(out)
		out = append(out, make([]byte, n)...)
		if _, err := io.ReadFull(c.br, out[start:]); err != nil {
			return nil, err
		}
		if n < maxPacket {
			return out, nil
		}
	}
}

// readPacketReuse is readPacket into a buffer the connection reuses: the
// result is valid only until the next call. The binlog stream uses it
// (every event is decoded into fresh memory before the next one is read),
// which saves an allocation and its garbage per event.
func (c *conn) readPacketReuse() ([]byte, error) {
	out := c.pbuf[:0]
	for {
		if _, err := io.ReadFull(c.br, c.hdr[:]); err != nil {
			return nil, err
		}
		n := int(uint32(c.hdr[0]) | uint32(c.hdr[1])<<8 | uint32(c.hdr[2])<<16)
		c.seq = c.hdr[3] + 1
		start := len(out)
		if cap(out)-start < n {
			grown := make([]byte, start, start+n+start/4)
			copy(grown, out)
			out = grown
		}
		out = out[:start+n]
		if _, err := io.ReadFull(c.br, out[start:]); err != nil {
			return nil, err
		}
		if n < maxPacket {
			if cap(out) <= 1<<20 {
				// Keep the buffer unless one huge event grew it: a rare
				// large event should not pin its memory forever.
				c.pbuf = out
			}
			return out, nil
		}
	}
}

func (c *conn) writePacket(payload []byte) error {
	for {
		n := min(len(payload), maxPacket)
		buf := make([]byte, 4+n)
		buf[0], buf[1], buf[2], buf[3] = byte(n), byte(n>>8), byte(n>>16), c.seq
		copy(buf[4:], payload[:n])
		c.seq++
		if _, err := c.nc.Write(buf); err != nil {
			return err
		}
		payload = payload[n:]
		if n < maxPacket {
			return nil
		}
	}
}

func (c *conn) handshake(p connParams) error {
	pkt, err := c.readPacket()
	if err != nil {
		return fmt.Errorf("reading server greeting: %w", err)
	}
	if len(pkt) > 0 && pkt[0] == 0xff {
		return parseErrPacket(pkt)
	}
	if len(pkt) < 1 || pkt[0] != 10 {
		return errors.New("unsupported protocol version in server greeting")
	}
	r := reader{b: pkt, i: 1}
	c.serverVersion = r.nulString()
	c.connID = r.u32()
	scramble := append([]byte(nil), r.bytes(8)...)
	r.skip(1)
	caps := uint32(r.u16())
	r.skip(1) // charset
	r.skip(2) // status
	caps |= uint32(r.u16()) << 16
	authLen := int(r.u8())
	r.skip(10)
	if caps&capSecureConnection != 0 {
		n := max(13, authLen-8)
		part := r.bytes(n)
		if len(part) > 0 && part[len(part)-1] == 0 {
			part = part[:len(part)-1]
		}
		scramble = append(scramble, part...)
	}
	plugin := "mysql_native_password"
	if caps&capPluginAuth != 0 && r.i < len(r.b) {
		plugin = r.nulString()
	}
	if r.err != nil {
		return fmt.Errorf("malformed server greeting: %w", r.err)
	}
	if caps&capProtocol41 == 0 {
		return errors.New("server does not speak protocol 4.1")
	}
	want := uint32(capLongPassword | capLongFlag | capProtocol41 | capTransactions |
		capSecureConnection | capMultiResults | capPluginAuth | capPluginAuthLenenc)
	if p.Database != "" {
		want |= capConnectWithDB
	}
	useTLS := false
	if p.TLS != nil {
		if caps&capSSL != 0 {
			useTLS = true
			want |= capSSL
		} else if p.TLSRequired {
			return errors.New("the server does not support TLS but tls.mode requires it (set tls.mode: prefer or disable, or enable TLS on the server)")
		}
	}
	c.caps = want & caps
	if useTLS {
		req := make([]byte, 32)
		binary.LittleEndian.PutUint32(req, c.caps)
		binary.LittleEndian.PutUint32(req[4:], maxPacket)
		req[8] = collationUTF8MB4
		if err := c.writePacket(req); err != nil {
			return err
		}
		if c.br.Buffered() > 0 {
			// The server must not talk before our ClientHello.
			return errors.New("unexpected data from the server before the TLS handshake")
		}
		tc := tls.Client(c.nc, p.TLS)
		if err := tc.Handshake(); err != nil {
			return fmt.Errorf("TLS handshake: %w", err)
		}
		c.nc = tc
		c.br = bufio.NewReaderSize(tc, 64<<10)
	}
	auth, err := authResponse(plugin, p.Password, scramble)
	if err != nil {
		return err
	}
	resp := make([]byte, 32, 128)
	binary.LittleEndian.PutUint32(resp, c.caps)
	binary.LittleEndian.PutUint32(resp[4:], maxPacket)
	resp[8] = collationUTF8MB4
	resp = append(resp, p.User...)
	resp = append(resp, 0)
	resp = appendLenenc(resp, uint64(len(auth)))
	resp = append(resp, auth...)
	if p.Database != "" {
		resp = append(resp, p.Database...)
		resp = append(resp, 0)
	}
	resp = append(resp, plugin...)
	resp = append(resp, 0)
	if err := c.writePacket(resp); err != nil {
		return err
	}
	return c.authResult(plugin, p.Password, useTLS)
}

func (c *conn) authResult(plugin, password string, secure bool) error {
	for range 5 {
		pkt, err := c.readPacket()
		if err != nil {
			return fmt.Errorf("reading auth result: %w", err)
		}
		if len(pkt) == 0 {
			return errors.New("empty auth packet")
		}
		switch pkt[0] {
		case 0x00:
			return nil
		case 0xff:
			return parseErrPacket(pkt)
		case 0xfe: // auth switch request
			r := reader{b: pkt, i: 1}
			plugin = r.nulString()
			scramble := append([]byte(nil), r.b[r.i:]...)
			if n := len(scramble); n > 0 && scramble[n-1] == 0 {
				scramble = scramble[:n-1]
			}
			auth, err := authResponse(plugin, password, scramble)
			if err != nil {
				return err
			}
			if err := c.writePacket(auth); err != nil {
				return err
			}
		case 0x01: // caching_sha2_password: more data
			if plugin != "caching_sha2_password" || len(pkt) < 2 {
				return errors.New("unexpected auth-more-data packet")
			}
			switch pkt[1] {
			case 3: // fast auth succeeded; an OK packet follows
			case 4: // full authentication: needs the clear password
				if !secure {
					return errors.New("caching_sha2_password full authentication needs TLS (set tls.mode: require) or a mysql_native_password account")
				}
				if err := c.writePacket(append([]byte(password), 0)); err != nil {
					return err
				}
			default:
				return errors.New("unexpected caching_sha2_password state")
			}
		default:
			return fmt.Errorf("unexpected auth packet 0x%02x", pkt[0])
		}
	}
	return errors.New("authentication did not finish")
}

func authResponse(plugin, password string, scramble []byte) ([]byte, error) {
	if password == "" {
		return nil, nil
	}
	switch plugin {
	case "mysql_native_password":
		// SHA1(pw) XOR SHA1(scramble + SHA1(SHA1(pw)))
		h1 := sha1.Sum([]byte(password))
		h2 := sha1.Sum(h1[:])
		s := sha1.New()
		s.Write(scramble[:min(20, len(scramble))])
		s.Write(h2[:])
		h3 := s.Sum(nil)
		for i := range h3 {
			h3[i] ^= h1[i]
		}
		return h3, nil
	case "caching_sha2_password":
		// XOR(SHA256(pw), SHA256(SHA256(SHA256(pw)), scramble))
		h1 := sha256.Sum256([]byte(password))
		h2 := sha256.Sum256(h1[:])
		s := sha256.New()
		s.Write(h2[:])
		s.Write(scramble[:min(20, len(scramble))])
		h3 := s.Sum(nil)
		for i := range h3 {
			h3[i] ^= h1[i]
		}
		return h3, nil
	}
	return nil, fmt.Errorf("unsupported authentication plugin %q (supported: mysql_native_password, caching_sha2_password)", plugin)
}

// column is a result set column definition.
type column struct {
	Name    string
	Type    byte
	Flags   uint16
	Charset uint16
}

// result is a fully read text result set; a nil cell is SQL NULL.
type result struct {
	Columns []column
	Rows    [][][]byte
}

// exec runs a statement and discards any result rows.
func (c *conn) exec(q string) error {
	_, err := c.query(q)
	return err
}

// query runs q with COM_QUERY and reads the whole text result.
func (c *conn) query(q string) (*result, error) {
	c.seq = 0
	if err := c.writePacket(append([]byte{0x03}, q...)); err != nil {
		return nil, err
	}
	pkt, err := c.readPacket()
	if err != nil {
		return nil, err
	}
	switch pkt[0] {
	case 0x00:
		return &result{}, nil
	case 0xff:
		return nil, parseErrPacket(pkt)
	}
	r := reader{b: pkt}
	n := int(r.lenenc())
	res := &result{Columns: make([]column, 0, n)}
	for range n {
		pkt, err := c.readPacket()
		if err != nil {
			return nil, err
		}
		cr := reader{b: pkt}
		for range 4 { // catalog, schema, table, org_table
			cr.lenencBytes()
		}
		name := string(cr.lenencBytes())
		cr.lenencBytes() // org_name
		cr.lenenc()
		col := column{Name: name, Charset: cr.u16()}
		cr.skip(4)
		col.Type = cr.u8()
		col.Flags = cr.u16()
		if cr.err != nil {
			return nil, fmt.Errorf("malformed column definition: %w", cr.err)
		}
		res.Columns = append(res.Columns, col)
	}
	if pkt, err = c.readPacket(); err != nil { // EOF after columns
		return nil, err
	}
	if pkt[0] == 0xff {
		return nil, parseErrPacket(pkt)
	}
	for {
		pkt, err := c.readPacket()
		if err != nil {
			return nil, err
		}
		if pkt[0] == 0xfe && len(pkt) < 9 {
			return res, nil
		}
		if pkt[0] == 0xff {
			return nil, parseErrPacket(pkt)
		}
		rr := reader{b: pkt}
		row := make([][]byte, n)
		for i := range n {
			if rr.i < len(rr.b) && rr.b[rr.i] == 0xfb {
				rr.i++
				continue
			}
			v := rr.lenencBytes()
			if v == nil {
				v = []byte{}
			}
			row[i] = v
		}
		if rr.err != nil {
			return nil, fmt.Errorf("malformed row: %w", rr.err)
		}
		res.Rows = append(res.Rows, row)
	}
}

// registerReplica sends COM_REGISTER_SLAVE so the server lists us in
// SHOW SLAVE HOSTS under our server_id.
func (c *conn) registerReplica(serverID uint32, host string, port uint16) error {
	c.seq = 0
	b := []byte{0x15}
	b = binary.LittleEndian.AppendUint32(b, serverID)
	host = host[:min(len(host), 255)]
	b = append(b, byte(len(host)))
	b = append(b, host...)
	b = append(b, 0, 0) // user, password: not reported
	b = binary.LittleEndian.AppendUint16(b, port)
	b = binary.LittleEndian.AppendUint32(b, 0) // rank
	b = binary.LittleEndian.AppendUint32(b, 0) // master id
	if err := c.writePacket(b); err != nil {
		return err
	}
	pkt, err := c.readPacket()
	if err != nil {
		return err
	}
	if pkt[0] == 0xff {
		return parseErrPacket(pkt)
	}
	return nil
}

// binlogDump sends COM_BINLOG_DUMP (file/position; on MariaDB the GTID
// start comes from @slave_connect_state set before).
func (c *conn) binlogDump(serverID uint32, file string, pos uint32) error {
	c.seq = 0
	b := []byte{0x12}
	b = binary.LittleEndian.AppendUint32(b, pos)
	b = binary.LittleEndian.AppendUint16(b, 0)
	b = binary.LittleEndian.AppendUint32(b, serverID)
	b = append(b, file...)
	return c.writePacket(b)
}

// binlogDumpGTID sends MySQL's COM_BINLOG_DUMP_GTID with the encoded
// executed GTID set.
func (c *conn) binlogDumpGTID(serverID uint32, sidBlock []byte) error {
	c.seq = 0
	b := []byte{0x1e}
	b = binary.LittleEndian.AppendUint16(b, 0x04) // BINLOG_THROUGH_GTID
	b = binary.LittleEndian.AppendUint32(b, serverID)
	b = binary.LittleEndian.AppendUint32(b, 0) // file name length
	b = binary.LittleEndian.AppendUint64(b, 4)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(sidBlock)))
	b = append(b, sidBlock...)
	return c.writePacket(b)
}

// reader decodes little-endian protocol fields; the first out-of-range
// access sets err and every later read returns zero values, so parsers
// check err once instead of after every field.
type reader struct {
	b   []byte
	i   int
	err error
}

var errShort = errors.New("truncated data")

func (r *reader) need(n int) bool {
	if r.err != nil {
		return false
	}
	if n < 0 || r.i+n > len(r.b) || r.i+n < r.i {
		r.err = errShort
		return false
	}
	return true
}

func (r *reader) skip(n int) {
	if r.need(n) {
		r.i += n
	}
}

func (r *reader) bytes(n int) []byte {
	if !r.need(n) {
		return nil
	}
	v := r.b[r.i : r.i+n]
	r.i += n
	return v
}

func (r *reader) rest() []byte {
	if r.err != nil {
		return nil
	}
	v := r.b[r.i:]
	r.i = len(r.b)
	return v
}

func (r *reader) u8() byte {
	if !r.need(1) {
		return 0
	}
	r.i++
	return r.b[r.i-1]
}

func (r *reader) u16() uint16 {
	if !r.need(2) {
		return 0
	}
	r.i += 2
	return binary.LittleEndian.Uint16(r.b[r.i-2:])
}

func (r *reader) u32() uint32 {
	if !r.need(4) {
		return 0
	}
	r.i += 4
	return binary.LittleEndian.Uint32(r.b[r.i-4:])
}

func (r *reader) u64() uint64 {
	if !r.need(8) {
		return 0
	}
	r.i += 8
	return binary.LittleEndian.Uint64(r.b[r.i-8:])
}

// uN reads an n-byte little-endian unsigned integer (n <= 8).
func (r *reader) uN(n int) uint64 {
	b := r.bytes(n)
	var v uint64
	for i := len(b) - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

func (r *reader) lenenc() uint64 {
	switch b := r.u8(); b {
	case 0xfc:
		return uint64(r.u16())
	case 0xfd:
		return r.uN(3)
	case 0xfe:
		return r.u64()
	case 0xfb, 0xff:
		if r.err == nil {
			r.err = errors.New("unexpected NULL/invalid length")
		}
		return 0
	default:
		return uint64(b)
	}
}

func (r *reader) lenencBytes() []byte {
	n := r.lenenc()
	if n > uint64(len(r.b)) {
		if r.err == nil {
			r.err = errShort
		}
		return nil
	}
	return r.bytes(int(n))
}

func (r *reader) nulString() string {
	if r.err != nil {
		return ""
	}
	for j := r.i; j < len(r.b); j++ {
		if r.b[j] == 0 {
			s := string(r.b[r.i:j])
			r.i = j + 1
			return s
		}
	}
	r.err = errShort
	return ""
}

func appendLenenc(b []byte, n uint64) []byte {
	switch {
	case n < 251:
		return append(b, byte(n))
	case n < 1<<16:
		return append(b, 0xfc, byte(n), byte(n>>8))
	case n < 1<<24:
		return append(b, 0xfd, byte(n), byte(n>>8), byte(n>>16))
	}
	return binary.LittleEndian.AppendUint64(append(b, 0xfe), n)
}

// quoteIdent quotes a MySQL identifier.
func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// quoteString returns a string literal that is safe whatever the session's
// sql_mode (NO_BACKSLASH_ESCAPES or not): a hex literal with a charset
// introducer.
func quoteString(s string) string {
	if s == "" {
		return "''"
	}
	return fmt.Sprintf("_utf8mb4 X'%x'", s)
}

// atoiBytes parses a decimal unsigned number from a result cell.
func atoiBytes(b []byte) (uint64, error) { return strconv.ParseUint(string(b), 10, 64) }
