package datagen

import (
	"strconv"
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
	size   int      // typical row size, to allocate once
	// row appends the row with primary key id, written by event seq at ts;
	// created is when the row was inserted (== ts for inserts).
	row func(g *generator, dst []byte, id, seq uint64, created, ts time.Time) []byte
}

// key appends the event key: an object of the primary key.
func (p *pattern) key(dst []byte, id uint64) []byte {
	dst = append(dst, `{"`...)
	dst = append(dst, p.pk...)
	dst = append(dst, `":`...)
	dst = p.appendID(dst, id)
	return append(dst, '}')
}

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
	{name: "orders", pk: "order_id", size: 128, row: orderRow,
		fields: []string{"order_id", "customer_id", "product", "quantity", "total", "status"}},
	{name: "users", pk: "user_id", size: 128, row: userRow,
		fields: []string{"user_id", "name", "email", "created_at"}},
	{name: "pageviews", pk: "pageview_id", size: 160, row: pageviewRow,
		fields: []string{"page_url", "user_id", "timestamp", "referrer"}},
	{name: "sequence", pk: "id", size: 48, row: sequenceRow,
		fields: []string{"id", "value"}},
	{name: "random", pk: "id", size: 96, row: randomRow,
		fields: []string{"id", "value", "ratio", "active", "category"}},
	{name: "events", pk: "event_id", size: 128, row: eventRow,
		fields: []string{"event_id", "event_type", "user_id", "session_id", "source"}},
	{name: "metrics", pk: "metric_id", size: 144, row: metricRow,
		fields: []string{"metric_id", "name", "value", "unit", "host", "timestamp"}},
	{name: "key_value", pk: "key", size: 64, row: keyValueRow,
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

// Value tables. Whole values go through appendString; composed ones (name,
// email, page_url) append parts raw, so entries must need no escaping (a
// test checks).
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
		b := []byte(s)
		for j, c := range b {
			if 'A' <= c && c <= 'Z' {
				b[j] = c + 'a' - 'A'
			}
		}
		out[i] = string(b)
	}
	return out
}

func (g *generator) pick(list []string) int { return g.rng.IntN(len(list)) }

func orderRow(g *generator, d []byte, id, _ uint64, _, _ time.Time) []byte {
	qty := 1 + g.rng.IntN(9)
	cents := 499 + g.rng.IntN(19500) // unit price 4.99 .. 199.98
	d = append(d, `{"order_id":`...)
	d = strconv.AppendUint(d, id, 10)
	d = append(d, `,"customer_id":`...)
	d = strconv.AppendInt(d, int64(1+g.rng.IntN(10_000)), 10)
	d = append(d, `,"product":`...)
	d = appendString(d, products[g.pick(products)])
	d = append(d, `,"quantity":`...)
	d = strconv.AppendInt(d, int64(qty), 10)
	d = append(d, `,"total":`...)
	d = appendCents(d, int64(qty*cents))
	d = append(d, `,"status":`...)
	d = appendString(d, orderStatuses[g.pick(orderStatuses)])
	return append(d, '}')
}

func userRow(g *generator, d []byte, id, _ uint64, created, _ time.Time) []byte {
	f, l := g.pick(firstNames), g.pick(lastNames)
	d = append(d, `{"user_id":`...)
	d = strconv.AppendUint(d, id, 10)
	d = append(d, `,"name":"`...)
	d = append(d, firstNames[f]...)
	d = append(d, ' ')
	d = append(d, lastNames[l]...)
	d = append(d, `","email":"`...)
	d = append(d, lowerFirstName[f]...)
	d = append(d, '.')
	d = append(d, lowerLastName[l]...)
	d = strconv.AppendUint(d, id, 10) // unique per user
	d = append(d, '@')
	d = append(d, mailDomains[g.pick(mailDomains)]...)
	d = append(d, `","created_at":"`...)
	d = events.AppendTimestamp(d, created)
	return append(d, `"}`...)
}

func pageviewRow(g *generator, d []byte, _, _ uint64, _, ts time.Time) []byte {
	path := pagePaths[g.pick(pagePaths)]
	d = append(d, `{"page_url":"https://shop.example.com`...)
	d = append(d, path...)
	if path[len(path)-1] == '/' && len(path) > 1 || path[len(path)-1] == '=' {
		d = strconv.AppendInt(d, int64(1+g.rng.IntN(500)), 10)
	}
	d = append(d, `","user_id":`...)
	d = strconv.AppendInt(d, int64(1+g.rng.IntN(10_000)), 10)
	d = append(d, `,"timestamp":"`...)
	d = events.AppendTimestamp(d, ts)
	d = append(d, `","referrer":`...)
	if r := g.rng.IntN(len(referrers) + 2); r < len(referrers) {
		d = appendString(d, referrers[r])
	} else {
		d = append(d, "null"...) // direct traffic
	}
	return append(d, '}')
}

func sequenceRow(_ *generator, d []byte, id, seq uint64, _, _ time.Time) []byte {
	d = append(d, `{"id":`...)
	d = strconv.AppendUint(d, id, 10)
	d = append(d, `,"value":`...)
	d = strconv.AppendUint(d, seq, 10)
	return append(d, '}')
}

func randomRow(g *generator, d []byte, id, _ uint64, _, _ time.Time) []byte {
	d = append(d, `{"id":`...)
	d = strconv.AppendUint(d, id, 10)
	d = append(d, `,"value":`...)
	d = strconv.AppendInt(d, int64(g.rng.IntN(1000)), 10)
	d = append(d, `,"ratio":`...)
	d = appendCents(d, int64(g.rng.IntN(101)))
	d = append(d, `,"active":`...)
	d = strconv.AppendBool(d, g.rng.IntN(2) == 1)
	d = append(d, `,"category":`...)
	d = appendString(d, categories[g.pick(categories)])
	return append(d, '}')
}

func eventRow(g *generator, d []byte, id, _ uint64, _, _ time.Time) []byte {
	d = append(d, `{"event_id":`...)
	d = strconv.AppendUint(d, id, 10)
	d = append(d, `,"event_type":`...)
	d = appendString(d, eventTypes[g.pick(eventTypes)])
	d = append(d, `,"user_id":`...)
	d = strconv.AppendInt(d, int64(1+g.rng.IntN(10_000)), 10)
	d = append(d, `,"session_id":"sess_`...)
	d = strconv.AppendUint(d, g.rng.Uint64()>>16, 16)
	d = append(d, `","source":`...)
	d = appendString(d, eventSources[g.pick(eventSources)])
	return append(d, '}')
}

func metricRow(g *generator, d []byte, id, _ uint64, _, ts time.Time) []byte {
	m := g.pick(metricNames)
	d = append(d, `{"metric_id":`...)
	d = strconv.AppendUint(d, id, 10)
	d = append(d, `,"name":`...)
	d = appendString(d, metricNames[m])
	d = append(d, `,"value":`...)
	d = appendCents(d, int64(g.rng.IntN(metricScale[m]*100)))
	d = append(d, `,"unit":`...)
	d = appendString(d, metricUnits[m])
	d = append(d, `,"host":`...)
	d = appendString(d, hosts[g.pick(hosts)])
	d = append(d, `,"timestamp":"`...)
	d = events.AppendTimestamp(d, ts)
	return append(d, `"}`...)
}

func keyValueRow(g *generator, d []byte, id, _ uint64, _, _ time.Time) []byte {
	d = append(d, `{"key":`...)
	d = appendKVKey(d, id)
	d = append(d, `,"value":"value_`...)
	d = strconv.AppendUint(d, g.rng.Uint64(), 16)
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

// appendString appends s as a JSON string, escaping what JSON requires.
func appendString(d []byte, s string) []byte {
	const hex = "0123456789abcdef"
	d = append(d, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		d = append(d, s[start:i]...)
		switch c {
		case '"', '\\':
			d = append(d, '\\', c)
		case '\n':
			d = append(d, '\\', 'n')
		case '\r':
			d = append(d, '\\', 'r')
		case '\t':
			d = append(d, '\\', 't')
		default:
			d = append(d, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	d = append(d, s[start:]...)
	return append(d, '"')
}
