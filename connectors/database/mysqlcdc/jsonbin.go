package mysqlcdc

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/rivven/rivven-connect/events"
)

// MySQL stores the JSON type in the binlog in its binary form
// (sql-common/json_binary.cc). MariaDB's JSON is LONGTEXT and never takes
// this path.

const (
	jsonSmallObject = 0x00
	jsonLargeObject = 0x01
	jsonSmallArray  = 0x02
	jsonLargeArray  = 0x03
	jsonLiteral     = 0x04
	jsonInt16       = 0x05
	jsonUint16      = 0x06
	jsonInt32       = 0x07
	jsonUint32      = 0x08
	jsonInt64       = 0x09
	jsonUint64      = 0x0a
	jsonDouble      = 0x0b
	jsonString      = 0x0c
	jsonOpaque      = 0x0f
)

var errJSON = errors.New("malformed binary JSON")

// appendBinaryJSON decodes a binary JSON document and appends it in the
// normalized text form appendNormalizedJSON produces.
func appendBinaryJSON(b []byte, data []byte) ([]byte, error) {
	if len(data) == 0 {
		return append(b, "null"...), nil
	}
	// Values may share offsets; the budget bounds the work to what a
	// document of this size can really hold (every value needs >= 1 byte).
	budget := len(data)
	v, err := jsonValue(data[0], data[1:], 0, &budget)
	if err != nil {
		return b, err
	}
	return events.AppendJSONValue(b, v)
}

func jsonValue(t byte, d []byte, depth int, budget *int) (any, error) {
	*budget--
	if depth > 100 || *budget < 0 {
		return nil, errJSON
	}
	switch t {
	case jsonSmallObject, jsonLargeObject, jsonSmallArray, jsonLargeArray:
		return jsonContainer(t, d, depth, budget)
	case jsonLiteral:
		if len(d) < 1 {
			return nil, errJSON
		}
		switch d[0] {
		case 0:
			return nil, nil
		case 1:
			return true, nil
		case 2:
			return false, nil
		}
		return nil, errJSON
	case jsonInt16:
		if len(d) < 2 {
			return nil, errJSON
		}
		return json.Number(strconv.FormatInt(int64(int16(binary.LittleEndian.Uint16(d))), 10)), nil
	case jsonUint16:
		if len(d) < 2 {
			return nil, errJSON
		}
		return json.Number(strconv.FormatUint(uint64(binary.LittleEndian.Uint16(d)), 10)), nil
	case jsonInt32:
		if len(d) < 4 {
			return nil, errJSON
		}
		return json.Number(strconv.FormatInt(int64(int32(binary.LittleEndian.Uint32(d))), 10)), nil
	case jsonUint32:
		if len(d) < 4 {
			return nil, errJSON
		}
		return json.Number(strconv.FormatUint(uint64(binary.LittleEndian.Uint32(d)), 10)), nil
	case jsonInt64:
		if len(d) < 8 {
			return nil, errJSON
		}
		return json.Number(strconv.FormatInt(int64(binary.LittleEndian.Uint64(d)), 10)), nil
	case jsonUint64:
		if len(d) < 8 {
			return nil, errJSON
		}
		return json.Number(strconv.FormatUint(binary.LittleEndian.Uint64(d), 10)), nil
	case jsonDouble:
		if len(d) < 8 {
			return nil, errJSON
		}
		f := math.Float64frombits(binary.LittleEndian.Uint64(d))
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, errJSON
		}
		return json.Number(strconv.FormatFloat(f, 'g', -1, 64)), nil
	case jsonString:
		n, k, err := jsonVarLen(d)
		if err != nil {
			return nil, err
		}
		if uint64(len(d)-k) < n {
			return nil, errJSON
		}
		return string(d[k : k+int(n)]), nil
	case jsonOpaque:
		if len(d) < 1 {
			return nil, errJSON
		}
		ft := d[0]
		n, k, err := jsonVarLen(d[1:])
		if err != nil {
			return nil, err
		}
		if uint64(len(d)-1-k) < n {
			return nil, errJSON
		}
		return jsonOpaqueValue(ft, d[1+k:1+k+int(n)])
	}
	return nil, fmt.Errorf("%w: value type %d", errJSON, t)
}

// jsonVarLen reads the 7-bits-per-byte length used by strings and opaque
// values.
func jsonVarLen(d []byte) (uint64, int, error) {
	var n uint64
	for i := 0; i < 5 && i < len(d); i++ {
		n |= uint64(d[i]&0x7f) << (7 * i)
		if d[i]&0x80 == 0 {
			return n, i + 1, nil
		}
	}
	return 0, 0, errJSON
}

func jsonContainer(t byte, d []byte, depth int, budget *int) (any, error) {
	large := t == jsonLargeObject || t == jsonLargeArray
	isObj := t == jsonSmallObject || t == jsonLargeObject
	w := 2
	if large {
		w = 4
	}
	word := func(off int) (int, bool) {
		if off < 0 || off+w > len(d) {
			return 0, false
		}
		if large {
			return int(binary.LittleEndian.Uint32(d[off:])), true
		}
		return int(binary.LittleEndian.Uint16(d[off:])), true
	}
	count, ok1 := word(0)
	size, ok2 := word(w)
	if !ok1 || !ok2 || size > len(d) || count > len(d) {
		return nil, errJSON
	}
	d = d[:size]
	hdr := 2 * w
	keyEntry := 0
	if isObj {
		keyEntry = w + 2
	}
	valEntry := 1 + w
	if hdr+count*(keyEntry+valEntry) > len(d) {
		return nil, errJSON
	}
	vals := make([]any, count)
	for i := range count {
		off := hdr + count*keyEntry + i*valEntry
		vt := d[off]
		inline := vt == jsonLiteral || vt == jsonInt16 || vt == jsonUint16 || (large && (vt == jsonInt32 || vt == jsonUint32))
		var v any
		var err error
		if inline {
			v, err = jsonValue(vt, d[off+1:off+1+w], depth+1, budget)
		} else {
			p, _ := word(off + 1)
			if p >= len(d) {
				return nil, errJSON
			}
			v, err = jsonValue(vt, d[p:], depth+1, budget)
		}
		if err != nil {
			return nil, err
		}
		vals[i] = v
	}
	if !isObj {
		return vals, nil
	}
	obj := make(map[string]any, count)
	for i := range count {
		off := hdr + i*keyEntry
		ko, _ := word(off)
		kl := int(binary.LittleEndian.Uint16(d[off+w:]))
		if ko+kl > len(d) || ko < 0 {
			return nil, errJSON
		}
		obj[string(d[ko:ko+kl])] = vals[i]
	}
	return obj, nil
}

func jsonOpaqueValue(ft byte, d []byte) (any, error) {
	switch ft {
	case typeNewDecimal:
		if len(d) < 2 {
			return nil, errJSON
		}
		out, err := appendDecimal(nil, d[2:], int(d[0]), int(d[1]))
		if err != nil {
			return nil, errJSON
		}
		return json.Number(strings.Trim(string(out), `"`)), nil
	case typeDate, typeDatetime, typeTimestamp, typeDatetime2, typeTimestamp2:
		if len(d) < 8 {
			return nil, errJSON
		}
		p := int64(binary.LittleEndian.Uint64(d))
		if p < 0 {
			p = -p
		}
		frac := p % (1 << 24)
		ymdhms := p >> 24
		ymd, hms := ymdhms>>17, ymdhms%(1<<17)
		ym := ymd >> 5
		s := fmt.Sprintf("%04d-%02d-%02d", ym/13, ym%13, ymd%(1<<5))
		if ft == typeDate {
			return s, nil
		}
		return fmt.Sprintf("%s %02d:%02d:%02d.%06d", s, hms>>12, (hms>>6)%(1<<6), hms%(1<<6), frac), nil
	case typeTime, typeTime2:
		if len(d) < 8 {
			return nil, errJSON
		}
		p := int64(binary.LittleEndian.Uint64(d))
		sign := ""
		if p < 0 {
			sign, p = "-", -p
		}
		frac := p % (1 << 24)
		hms := p >> 24
		return fmt.Sprintf("%s%02d:%02d:%02d.%06d", sign, (hms>>12)%(1<<10), (hms>>6)%(1<<6), hms%(1<<6), frac), nil
	}
	return "base64:type" + strconv.Itoa(int(ft)) + ":" + base64.StdEncoding.EncodeToString(d), nil
}

// normalizeNumbers rewrites non-integer numbers to Go's shortest float64
// form, so "1e300" from text and 1e+300 from a binary double agree.
func normalizeNumbers(x any) any {
	switch v := x.(type) {
	case json.Number:
		if strings.ContainsAny(string(v), ".eE") {
			if f, err := strconv.ParseFloat(string(v), 64); err == nil && !math.IsInf(f, 0) {
				return json.Number(strconv.FormatFloat(f, 'g', -1, 64))
			}
		}
		return v
	case map[string]any:
		for k, e := range v {
			v[k] = normalizeNumbers(e)
		}
	case []any:
		for i, e := range v {
			v[i] = normalizeNumbers(e)
		}
	}
	return x
}
