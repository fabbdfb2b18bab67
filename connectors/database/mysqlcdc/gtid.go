package mysqlcdc

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// gtidSet is the set of transactions seen, in either flavor:
//
//   - MariaDB: one "domain-server-seq" per replication domain (the last
//     transaction of each domain), e.g. "0-1-42,1-2-7";
//   - MySQL: "uuid:interval[:interval...]" per source server, e.g.
//     "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7".
type gtidSet struct {
	maria map[uint32]mariaGTID
	mysql map[[16]byte][]interval
}

type mariaGTID struct {
	Server uint32
	Seq    uint64
}

// interval is [Start, End] inclusive.
type interval struct{ Start, End int64 }

// parseGTIDSet accepts either format; an empty string is the empty set.
func parseGTIDSet(s string) (gtidSet, error) {
	var g gtidSet
	s = strings.TrimSpace(strings.ReplaceAll(s, "\n", ""))
	if s == "" {
		return g, nil
	}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if strings.Contains(part, ":") {
			if err := g.addMySQLPart(part); err != nil {
				return g, err
			}
			continue
		}
		f := strings.Split(part, "-")
		if len(f) != 3 {
			return g, fmt.Errorf("bad GTID %q (want MariaDB domain-server-seq like 0-1-42 or MySQL uuid:1-5)", part)
		}
		d, e1 := strconv.ParseUint(f[0], 10, 32)
		sv, e2 := strconv.ParseUint(f[1], 10, 32)
		seq, e3 := strconv.ParseUint(f[2], 10, 64)
		if e1 != nil || e2 != nil || e3 != nil {
			return g, fmt.Errorf("bad GTID %q (want domain-server-seq with numbers)", part)
		}
		if g.maria == nil {
			g.maria = map[uint32]mariaGTID{}
		}
		g.maria[uint32(d)] = mariaGTID{Server: uint32(sv), Seq: seq}
	}
	if len(g.maria) > 0 && len(g.mysql) > 0 {
		return g, fmt.Errorf("GTID set %q mixes MariaDB and MySQL formats", s)
	}
	return g, nil
}

func parseUUID(s string) ([16]byte, error) {
	var u [16]byte
	h := strings.ReplaceAll(s, "-", "")
	if len(h) != 32 {
		return u, fmt.Errorf("bad server uuid %q", s)
	}
	if _, err := hex.Decode(u[:], []byte(h)); err != nil {
		return u, fmt.Errorf("bad server uuid %q", s)
	}
	return u, nil
}

func formatUUID(u [16]byte) string {
	h := hex.EncodeToString(u[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func (g *gtidSet) addMySQLPart(part string) error {
	f := strings.Split(part, ":")
	u, err := parseUUID(f[0])
	if err != nil {
		return err
	}
	if len(f) < 2 {
		return fmt.Errorf("bad GTID %q: no interval", part)
	}
	for _, iv := range f[1:] {
		a, b, ok := strings.Cut(iv, "-")
		start, err := strconv.ParseInt(a, 10, 64)
		if err != nil || start < 1 {
			return fmt.Errorf("bad GTID interval %q", iv)
		}
		end := start
		if ok {
			if end, err = strconv.ParseInt(b, 10, 64); err != nil || end < start {
				return fmt.Errorf("bad GTID interval %q", iv)
			}
		}
		g.addMySQLRange(u, start, end)
	}
	return nil
}

func (g *gtidSet) addMySQLRange(u [16]byte, start, end int64) {
	if g.mysql == nil {
		g.mysql = map[[16]byte][]interval{}
	}
	ivs := append(g.mysql[u], interval{start, end})
	sort.Slice(ivs, func(i, j int) bool { return ivs[i].Start < ivs[j].Start })
	out := ivs[:1]
	for _, iv := range ivs[1:] {
		last := &out[len(out)-1]
		if iv.Start <= last.End+1 {
			last.End = max(last.End, iv.End)
			continue
		}
		out = append(out, iv)
	}
	g.mysql[u] = out
}

// addMaria records a committed MariaDB transaction.
func (g *gtidSet) addMaria(domain, server uint32, seq uint64) {
	if g.maria == nil {
		g.maria = map[uint32]mariaGTID{}
	}
	g.maria[domain] = mariaGTID{server, seq}
}

func (g gtidSet) String() string {
	var parts []string
	if len(g.maria) > 0 {
		ds := make([]uint32, 0, len(g.maria))
		for d := range g.maria {
			ds = append(ds, d)
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		for _, d := range ds {
			m := g.maria[d]
			parts = append(parts, fmt.Sprintf("%d-%d-%d", d, m.Server, m.Seq))
		}
		return strings.Join(parts, ",")
	}
	us := make([][16]byte, 0, len(g.mysql))
	for u := range g.mysql {
		us = append(us, u)
	}
	sort.Slice(us, func(i, j int) bool { return formatUUID(us[i]) < formatUUID(us[j]) })
	for _, u := range us {
		var sb strings.Builder
		sb.WriteString(formatUUID(u))
		for _, iv := range g.mysql[u] {
			sb.WriteString(":" + strconv.FormatInt(iv.Start, 10))
			if iv.End != iv.Start {
				sb.WriteString("-" + strconv.FormatInt(iv.End, 10))
			}
		}
		parts = append(parts, sb.String())
	}
	return strings.Join(parts, ",")
}

// sidBlock encodes a MySQL GTID set for COM_BINLOG_DUMP_GTID (intervals
// are half-open there).
func (g gtidSet) sidBlock() []byte {
	us := make([][16]byte, 0, len(g.mysql))
	for u := range g.mysql {
		us = append(us, u)
	}
	sort.Slice(us, func(i, j int) bool { return formatUUID(us[i]) < formatUUID(us[j]) })
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(us)))
	for _, u := range us {
		b = append(b, u[:]...)
		ivs := g.mysql[u]
		b = binary.LittleEndian.AppendUint64(b, uint64(len(ivs)))
		for _, iv := range ivs {
			b = binary.LittleEndian.AppendUint64(b, uint64(iv.Start))
			b = binary.LittleEndian.AppendUint64(b, uint64(iv.End+1))
		}
	}
	return b
}
