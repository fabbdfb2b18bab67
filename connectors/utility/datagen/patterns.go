package datagen

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/rivven/rivven-connect/events"
)

// pattern is one kind of row. Rows are appended as JSON bytes directly
// rather than built as maps and marshalled: that is most of what makes the
// generator fast enough to benchmark sinks with.
type pattern struct {
	name   string
	pk     string   // primary key field, the event key
	fields []string // the row's fields in order (documented in README.md)
	size   int      // room for a row (with 7-digit ids), to allocate once
	// row appends the row r stands for, drawing its values from rng.
	row func(rng *rand.Rand, dst []byte, r rowState) []byte
}

// key appends the event key: an object of the primary key.
func (p *pattern) key(dst []byte, id uint64) []byte {
	dst = append(dst, `{"`...)
	dst = append(dst, p.pk...)
	dst = append(dst, `":`...)
	dst = p.appendID(dst, id)
	return append(dst, '}')
}

// keySize is room for any key: {"<pk>":<id>}, the id quoted or not.
func (p *pattern) keySize() int { return len(p.pk) + len(`{"":""}`) + 20 }

// appendID appends the primary key value as it appears in the row.
func (p *pattern) appendID(dst []byte, id uint64) []byte {
	if p.name == "key_value" {
		return appendKVKey(dst, id)
	}
	return strconv.AppendUint(dst, id, 10)
}

// appendKVKey appends the string key of key_value rows, "key_00000001".
func appendKVKey(dst []byte, id uint64) []byte {
	dst = append(dst, `"key_`...)
	dst = appendPadded(dst, id, 8)
	return append(dst, '"')
}

// patternList is in the order the docs list patterns.
var patternList = []*pattern{
	{name: "orders", pk: "order_id", size: 120, row: orderRow,
		fields: []string{"order_id", "customer_id", "product", "quantity", "total", "status"}},
	{name: "users", pk: "user_id", size: 136, row: userRow,
		fields: []string{"user_id", "name", "email", "created_at"}},
	{name: "pageviews", pk: "pageview_id", size: 152, row: pageviewRow,
		fields: []string{"page_url", "user_id", "timestamp", "referrer"}},
	{name: "sequence", pk: "id", size: 32, row: sequenceRow,
		fields: []string{"id", "value"}},
	{name: "random", pk: "id", size: 72, row: randomRow,
		fields: []string{"id", "value", "ratio", "active", "category"}},
	{name: "events", pk: "event_id", size: 128, row: eventRow,
		fields: []string{"event_id", "event_type", "user_id", "session_id", "source"}},
	{name: "metrics", pk: "metric_id", size: 136, row: metricRow,
		fields: []string{"metric_id", "name", "value", "unit", "host", "timestamp"}},
	{name: "key_value", pk: "key", size: 56, row: keyValueRow,
		fields: []string{"key", "value"}},
}

var patterns = func() map[string]*pattern {
	m := make(map[string]*pattern, len(patternList))
	for _, p := range patternList {
		m[p.name] = p
	}
	return m
}()

func patternNames() []string {
	names := make([]string, len(patternList))
	for i, p := range patternList {
		names[i] = p.name
	}
	return names
}

// Value tables. Whole values go through events.AppendJSONString; composed
// ones (name, email, page_url) append parts raw, so entries must need no
// escaping (a test checks).
var (
	products       = []string{"Widget Pro", "Gadget X", "Super Tool", "Mega Device", "Ultra Kit", "Power Pack", "Smart Hub", "Data Box", "Cloud Unit", "Sync Module"}
	orderStatuses  = []string{"pending", "confirmed", "processing", "shipped", "delivered", "cancelled"}
	firstNames     = []string{"Alice", "Bob", "Carol", "David", "Eve", "Frank", "Grace", "Henry", "Ivy", "Jack", "Kate", "Leo", "Mia", "Noah", "Olivia", "Peter"}
	lastNames      = []string{"Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Martinez", "Anderson", "Taylor", "Thomas", "Moore", "White"}
	mailDomains    = []string{"example.com", "test.org", "demo.net", "mail.io", "acme.co"}
	pagePaths      = []string{"/", "/products", "/products/", "/cart", "/checkout", "/search?q=", "/blog/", "/about", "/account", "/help"}
	referrers      = []string{"https://www.google.com/", "https://www.bing.com/", "https://news.ycombinator.com/", "https://twitter.com/", "https://www.reddit.com/"}
	eventTypes     = []string{"page_view", "click", "signup", "purchase", "logout", "error", "search", "add_to_cart", "remove_from_cart", "checkout"}
	eventSources   = []string{"web", "mobile_ios", "mobile_android", "api", "webhook"}
	metricNames    = []string{"cpu_usage", "memory_used", "disk_io", "network_rx", "network_tx", "requests_per_sec", "latency_ms", "error_rate", "queue_depth"}
	metricUnits    = []string{"percent", "percent", "bytes/s", "bytes/s", "bytes/s", "req/s", "milliseconds", "percent", "count"}
	metricScale    = []int{100, 100, 1000, 1000, 1000, 10000, 500, 100, 1000} // value range per metric
	hosts          = []string{"web-01", "web-02", "api-01", "api-02", "db-01", "cache-01"}
	categories     = []string{"A", "B", "C", "D"}
	lowerFirstName = lowered(firstNames)
	lowerLastName  = lowered(lastNames)
)

func lowered(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.ToLower(s)
	}
	return out
}

func pick(rng *rand.Rand, list []string) string { return list[rng.IntN(len(list))] }

// timestamp converts a rowState time back for formatting.
func timestamp(unixNano int64) time.Time { return time.Unix(0, unixNano) }

func orderRow(rng *rand.Rand, d []byte, r rowState) []byte {
	qty := 1 + rng.IntN(9)
	cents := 499 + rng.IntN(19500) // unit price 4.99 .. 199.98
	d = append(d, `{"order_id":`...)
	d = strconv.AppendUint(d, r.id, 10)
	d = append(d, `,"customer_id":`...)
	d = strconv.AppendInt(d, int64(1+rng.IntN(10_000)), 10)
	d = append(d, `,"product":`...)
	d = events.AppendJSONString(d, pick(rng, products))
	d = append(d, `,"quantity":`...)
	d = strconv.AppendInt(d, int64(qty), 10)
	d = append(d, `,"total":`...)
	d = appendCents(d, int64(qty*cents))
	d = append(d, `,"status":`...)
	d = events.AppendJSONString(d, pick(rng, orderStatuses))
	return append(d, '}')
}

func userRow(rng *rand.Rand, d []byte, r rowState) []byte {
	f, l := rng.IntN(len(firstNames)), rng.IntN(len(lastNames))
	d = append(d, `{"user_id":`...)
	d = strconv.AppendUint(d, r.id, 10)
	d = append(d, `,"name":"`...)
	d = append(d, firstNames[f]...)
	d = append(d, ' ')
	d = append(d, lastNames[l]...)
	d = append(d, `","email":"`...)
	d = append(d, lowerFirstName[f]...)
	d = append(d, '.')
	d = append(d, lowerLastName[l]...)
	d = strconv.AppendUint(d, r.id, 10) // unique per user
	d = append(d, '@')
	d = append(d, pick(rng, mailDomains)...)
	d = append(d, `","created_at":"`...)
	d = events.AppendTimestamp(d, timestamp(r.created))
	return append(d, `"}`...)
}

func pageviewRow(rng *rand.Rand, d []byte, r rowState) []byte {
	path := pick(rng, pagePaths)
	d = append(d, `{"page_url":"https://shop.example.com`...)
	d = append(d, path...)
	if path[len(path)-1] == '/' && len(path) > 1 || path[len(path)-1] == '=' { // an item or a search term
		d = strconv.AppendInt(d, int64(1+rng.IntN(500)), 10)
	}
	d = append(d, `","user_id":`...)
	d = strconv.AppendInt(d, int64(1+rng.IntN(10_000)), 10)
	d = append(d, `,"timestamp":"`...)
	d = events.AppendTimestamp(d, timestamp(r.written))
	d = append(d, `","referrer":`...)
	if i := rng.IntN(len(referrers) + 2); i < len(referrers) {
		d = events.AppendJSONString(d, referrers[i])
	} else {
		d = append(d, "null"...) // direct traffic
	}
	return append(d, '}')
}

func sequenceRow(_ *rand.Rand, d []byte, r rowState) []byte {
	d = append(d, `{"id":`...)
	d = strconv.AppendUint(d, r.id, 10)
	d = append(d, `,"value":`...)
	d = strconv.AppendUint(d, r.seq, 10)
	return append(d, '}')
}

func randomRow(rng *rand.Rand, d []byte, r rowState) []byte {
	d = append(d, `{"id":`...)
	d = strconv.AppendUint(d, r.id, 10)
	d = append(d, `,"value":`...)
	d = strconv.AppendInt(d, int64(rng.IntN(1000)), 10)
	d = append(d, `,"ratio":`...)
	d = appendCents(d, int64(rng.IntN(101)))
	d = append(d, `,"active":`...)
	d = strconv.AppendBool(d, rng.IntN(2) == 1)
	d = append(d, `,"category":`...)
	d = events.AppendJSONString(d, pick(rng, categories))
	return append(d, '}')
}

func eventRow(rng *rand.Rand, d []byte, r rowState) []byte {
	d = append(d, `{"event_id":`...)
	d = strconv.AppendUint(d, r.id, 10)
	d = append(d, `,"event_type":`...)
	d = events.AppendJSONString(d, pick(rng, eventTypes))
	d = append(d, `,"user_id":`...)
	d = strconv.AppendInt(d, int64(1+rng.IntN(10_000)), 10)
	d = append(d, `,"session_id":"sess_`...)
	d = strconv.AppendUint(d, rng.Uint64()>>16, 16)
	d = append(d, `","source":`...)
	d = events.AppendJSONString(d, pick(rng, eventSources))
	return append(d, '}')
}

func metricRow(rng *rand.Rand, d []byte, r rowState) []byte {
	m := rng.IntN(len(metricNames))
	d = append(d, `{"metric_id":`...)
	d = strconv.AppendUint(d, r.id, 10)
	d = append(d, `,"name":`...)
	d = events.AppendJSONString(d, metricNames[m])
	d = append(d, `,"value":`...)
	d = appendCents(d, int64(rng.IntN(metricScale[m]*100)))
	d = append(d, `,"unit":`...)
	d = events.AppendJSONString(d, metricUnits[m])
	d = append(d, `,"host":`...)
	d = events.AppendJSONString(d, pick(rng, hosts))
	d = append(d, `,"timestamp":"`...)
	d = events.AppendTimestamp(d, timestamp(r.written))
	return append(d, `"}`...)
}

func keyValueRow(rng *rand.Rand, d []byte, r rowState) []byte {
	d = append(d, `{"key":`...)
	d = appendKVKey(d, r.id)
	d = append(d, `,"value":"value_`...)
	d = strconv.AppendUint(d, rng.Uint64(), 16)
	return append(d, `"}`...)
}

// appendCents appends c/100 as a JSON number with two decimals, exactly
// (no float rounding).
func appendCents(d []byte, c int64) []byte {
	d = strconv.AppendInt(d, c/100, 10)
	d = append(d, '.', byte('0'+c%100/10), byte('0'+c%10))
	return d
}

// appendPadded appends v in decimal, zero-padded to width digits.
func appendPadded(d []byte, v uint64, width int) []byte {
	var buf [20]byte
	b := strconv.AppendUint(buf[:0], v, 10)
	for i := len(b); i < width; i++ {
		d = append(d, '0')
	}
	return append(d, b...)
}
