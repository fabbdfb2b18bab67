package schema

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/spec"
)

// Strategies name a value's subject.
const (
	TopicName       = "topic"        // <topic>-value
	RecordName      = "record"       // <namespace>.<record>
	TopicRecordName = "topic_record" // <topic>-<namespace>.<record>
)

// Client is how to reach the registry: the schema_registry block's
// authentication and TLS, shared by the sink and the source.
type Client struct {
	Username    string `yaml:"username" doc:"Basic auth user (on Confluent Cloud the API key)."`
	Password    string `yaml:"password" secret:"true" doc:"Basic auth password (on Confluent Cloud the API secret)."`
	BearerToken string `yaml:"bearer_token" secret:"true" doc:"Bearer token sent as Authorization: Bearer (instead of basic auth)."`
	TLS         TLS    `yaml:"tls" doc:"TLS to an https:// registry."`
}

// TLS is schema_registry.tls.
type TLS struct {
	CAFile             string `yaml:"ca_file" doc:"PEM CA bundle the registry's certificate is checked against (default: the system roots)."`
	CertFile           string `yaml:"cert_file" doc:"PEM client certificate (mutual TLS)."`
	KeyFile            string `yaml:"key_file" doc:"PEM key of cert_file."`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify" default:"false" doc:"Do not check the registry's certificate (tests only)."`
}

// SinkOptions is the schema_registry block of a sink: how its values are
// encoded and registered.
type SinkOptions struct {
	Client          `yaml:",inline"`
	Format          string `yaml:"format" default:"avro" enum:"avro,json,protobuf" doc:"Schema type of the values: avro, json (JSON Schema) or protobuf."`
	SubjectStrategy string `yaml:"subject_strategy" default:"topic" enum:"topic,record,topic_record" doc:"Subject of a value's schema: topic (<topic>-value), record (<namespace>.<record>) or topic_record (<topic>-<namespace>.<record>)."`
	Schema          string `yaml:"schema" doc:"The value schema, in format's language (an Avro record, a JSON Schema object, a proto3 file whose first message is the value); default: inferred from the rows, widened and registered as new versions when rows change."`
	Namespace       string `yaml:"namespace" default:"rivven.events" doc:"Namespace (Protobuf package) of inferred schemas."`
	RecordName      string `yaml:"record_name" doc:"Record (message) name of inferred schemas; default: the event's stream, as a name."`
	AutoRegister    bool   `yaml:"auto_register" default:"true" doc:"Register schemas the subject lacks; false: only look them up (each must be registered already)."`
}

// Validate checks what the tags cannot express (paths relative to the
// block).
func (c *Client) Validate() []spec.Problem {
	var ps []spec.Problem
	if c.Username != "" && c.Password == "" {
		ps = append(ps, spec.Problem{Path: "password", Message: "username needs a password"})
	}
	if c.Password != "" && c.Username == "" {
		ps = append(ps, spec.Problem{Path: "username", Message: "password needs a username"})
	}
	if c.BearerToken != "" && c.Username != "" {
		ps = append(ps, spec.Problem{Path: "bearer_token", Message: "use either bearer_token or username/password, not both"})
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		ps = append(ps, spec.Problem{Path: "tls.cert_file", Message: "cert_file and key_file go together"})
	}
	return ps
}

// Validate checks the block, including a given schema.
func (o *SinkOptions) Validate() []spec.Problem {
	ps := o.Client.Validate()
	if o.Schema != "" {
		if _, err := newCodec(o.Format, o.Schema, nil); err != nil {
			ps = append(ps, spec.Problem{Path: "schema", Message: err.Error()})
		}
	}
	if o.RecordName != "" && !validName(o.RecordName) {
		ps = append(ps, spec.Problem{Path: "record_name", Message: fmt.Sprintf("%q is not a name ([A-Za-z_][A-Za-z0-9_]*)", o.RecordName)})
	}
	for part := range strings.SplitSeq(o.Namespace, ".") {
		if o.Namespace != "" && !validName(part) {
			ps = append(ps, spec.Problem{Path: "namespace", Message: fmt.Sprintf("%q is not dotted names", o.Namespace)})
			break
		}
	}
	return ps
}

// ValidateURL checks a schema_registry_url.
func ValidateURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http:// or https:// URL", redactURL(raw))
	}
	return nil
}

// redactURL drops a password from a URL for messages.
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		u.User = url.User(u.User.Username())
		return u.String()
	}
	return raw
}

// NewClient makes a registry client for the URL (which may carry
// user:password) with the block's authentication and TLS.
func NewClient(rawURL string, c Client) (*sr.Client, error) {
	if err := ValidateURL(rawURL); err != nil {
		return nil, err
	}
	u, _ := url.Parse(rawURL)
	user, pass := c.Username, c.Password
	if u.User != nil {
		user = u.User.Username()
		pass, _ = u.User.Password()
		u.User = nil
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if u.Scheme == "https" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.TLS.InsecureSkipVerify} //nolint:gosec // opt-in, documented for tests
		if c.TLS.CAFile != "" {
			pem, err := os.ReadFile(c.TLS.CAFile)
			if err != nil {
				return nil, fmt.Errorf("schema registry tls.ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("schema registry tls.ca_file %s: no PEM certificate", c.TLS.CAFile)
			}
			cfg.RootCAs = pool
		}
		if c.TLS.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("schema registry tls.cert_file: %w", err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		tr.TLSClientConfig = cfg
	}
	opts := []sr.ClientOpt{
		sr.URLs(u.String()),
		sr.HTTPClient(&http.Client{Transport: tr, Timeout: 30 * time.Second}),
		sr.UserAgent("rivven-connect"),
	}
	switch {
	case c.BearerToken != "":
		opts = append(opts, sr.BearerToken(c.BearerToken))
	case user != "":
		opts = append(opts, sr.BasicAuth(user, pass))
	}
	return sr.NewClient(opts...)
}

// Serializer encodes events' rows as wire-format values, registering
// (and caching) their schemas. It is safe for concurrent use.
type Serializer struct {
	cl   *sr.Client
	opts SinkOptions

	mu       sync.Mutex
	subjects map[string]*subjectState
}

type subjectState struct {
	mu     sync.Mutex
	loaded bool   // the subject's latest version was read
	codec  *codec // current schema
}

// NewSerializer makes a serializer; it contacts the registry lazily.
func NewSerializer(cl *sr.Client, o SinkOptions) *Serializer {
	if o.Format == "" {
		o.Format = Avro
	}
	if o.SubjectStrategy == "" {
		o.SubjectStrategy = TopicName
	}
	return &Serializer{cl: cl, opts: o, subjects: map[string]*subjectState{}}
}

// Subject is the subject of a value on topic whose record is
// namespace.name.
func Subject(strategy, topic, namespace, name string) string {
	full := name
	if namespace != "" {
		full = namespace + "." + name
	}
	switch strategy {
	case RecordName:
		return full
	case TopicRecordName:
		return topic + "-" + full
	}
	return topic + "-value"
}

// recordName is the record (message) name of an event.
func (s *Serializer) recordName(e *events.Event) (namespace, name string) {
	if s.opts.Schema != "" {
		return s.givenName()
	}
	name = s.opts.RecordName
	if name == "" {
		name = SanitizeName(e.Stream)
	}
	return s.opts.Namespace, name
}

// givenName is the full name of the given schema's record.
func (s *Serializer) givenName() (string, string) {
	switch s.opts.Format {
	case Avro:
		if sch, err := avro.ParseWithCache(s.opts.Schema, "", &avro.SchemaCache{}); err == nil {
			if n, ok := sch.(avro.NamedSchema); ok {
				return n.Namespace(), n.Name()
			}
		}
	case Protobuf:
		if md, err := compileProto(context.Background(), s.opts.Schema, nil); err == nil {
			full := string(md.FullName())
			if i := strings.LastIndexByte(full, '.'); i >= 0 {
				return full[:i], full[i+1:]
			}
			return "", full
		}
	case JSON:
		var t struct {
			Title string `json:"title"`
		}
		_ = json.Unmarshal([]byte(s.opts.Schema), &t)
		if i := strings.LastIndexByte(t.Title, '.'); i >= 0 {
			return t.Title[:i], t.Title[i+1:]
		}
		return "", t.Title
	}
	return "", ""
}

// Encoded is one wire-format value and where its schema is registered.
type Encoded struct {
	Value   []byte
	ID      int
	Subject string
}

// Encode encodes the row of e for topic. An event without a row, or whose
// row the registry refuses to widen the schema for (an incompatible
// change), is an error for that event only.
func (s *Serializer) Encode(ctx context.Context, topic string, e *events.Event) (Encoded, error) {
	row, err := e.Row()
	if err != nil {
		return Encoded{}, err
	}
	if row == nil {
		return Encoded{}, fmt.Errorf("the %s event has no row to encode", e.Type)
	}
	ns, name := s.recordName(e)
	if name == "" && s.opts.SubjectStrategy != TopicName {
		return Encoded{}, errors.New("the schema has no record name for the subject")
	}
	subject := Subject(s.opts.SubjectStrategy, topic, ns, name)
	s.mu.Lock()
	st := s.subjects[subject]
	if st == nil {
		st = &subjectState{}
		s.subjects[subject] = st
	}
	s.mu.Unlock()

	st.mu.Lock()
	defer st.mu.Unlock()
	if err := s.prepare(ctx, st, subject, ns, name, row); err != nil {
		return Encoded{}, err
	}
	b, err := st.codec.appendDatum(nil, row)
	if err != nil {
		return Encoded{}, fmt.Errorf("encode as %s schema %d (%s): %w", s.opts.Format, st.codec.id, subject, err)
	}
	return Encoded{Value: b, ID: st.codec.id, Subject: subject}, nil
}

// prepare makes st's codec one that fits row: the given schema
// (registered once), or the inferred one, widened and registered when
// row does not fit.
func (s *Serializer) prepare(ctx context.Context, st *subjectState, subject, ns, name string, row map[string]any) error {
	if s.opts.Schema != "" {
		if st.codec != nil {
			return nil
		}
		c, err := newCodec(s.opts.Format, s.opts.Schema, nil)
		if err != nil {
			return err
		}
		if c.id, err = s.register(ctx, subject, s.opts.Schema); err != nil {
			return err
		}
		st.codec = c
		return nil
	}
	if !st.loaded {
		// Widen what the subject has, so that a restarted sink does not
		// register a narrower schema than the one it wrote with.
		if latest, err := s.cl.SchemaByVersion(ctx, subject, -1); err == nil && latest.Type == srType(s.opts.Format) {
			var rec *Record
			var ok bool
			switch s.opts.Format {
			case Avro:
				rec, ok = RecordFromAvro(latest.Schema.Schema)
			case JSON:
				rec, ok = RecordFromJSONSchema(latest.Schema.Schema)
			}
			if ok {
				if c, err := newCodec(s.opts.Format, latest.Schema.Schema, rec); err == nil {
					c.id = latest.ID
					st.codec = c
				}
			}
		} else if err != nil && !notFound(err) {
			return fmt.Errorf("schema registry: latest version of %s: %w", subject, err)
		}
		st.loaded = true
	}
	var cur *Record
	if st.codec != nil {
		cur = st.codec.rec
		if cur.Fits(row) {
			return nil
		}
	}
	rec := cur.Widen(ns, name, row)
	if cur != nil {
		rec.Namespace, rec.Name = cur.Namespace, cur.Name
	}
	text := rec.Render(s.opts.Format)
	c, err := newCodec(s.opts.Format, text, rec)
	if err != nil {
		return err
	}
	if c.id, err = s.register(ctx, subject, text); err != nil {
		return err
	}
	st.codec = c
	return nil
}

func notFound(err error) bool {
	var re *sr.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusNotFound
}

// register registers (or, without auto_register, looks up) a schema and
// returns its id.
func (s *Serializer) register(ctx context.Context, subject, text string) (int, error) {
	sch := sr.Schema{Schema: text, Type: srType(s.opts.Format)}
	if !s.opts.AutoRegister {
		ss, err := s.cl.LookupSchema(ctx, subject, sch)
		if err != nil {
			return 0, fmt.Errorf("schema registry: %s has no such schema (auto_register is off): %w", subject, err)
		}
		return ss.ID, nil
	}
	ss, err := s.cl.CreateSchema(ctx, subject, sch)
	if err != nil {
		return 0, fmt.Errorf("schema registry refused a new version of %s: %w", subject, err)
	}
	return ss.ID, nil
}

// Deserializer decodes wire-format values with the schemas their ids
// name, fetched once each. It is safe for concurrent use.
type Deserializer struct {
	cl *sr.Client

	mu    sync.Mutex
	byID  map[int]*decoder
	proto map[string]protoreflect.MessageDescriptor
}

type decoder struct {
	typ     sr.SchemaType
	avro    avro.Schema
	text    string
	subject string
}

// NewDeserializer makes a deserializer.
func NewDeserializer(cl *sr.Client) *Deserializer {
	return &Deserializer{cl: cl, byID: map[int]*decoder{}, proto: map[string]protoreflect.MessageDescriptor{}}
}

// ErrNotWireFormat says a value does not start with the magic byte.
var ErrNotWireFormat = errors.New("not in the schema registry wire format (no magic byte 0 and schema id)")

// Decoded is a decoded value: JSON-shaped data and its schema.
type Decoded struct {
	Data    any
	ID      int
	Subject string
}

// Decode decodes a wire-format value.
func (d *Deserializer) Decode(ctx context.Context, b []byte) (Decoded, error) {
	var h sr.ConfluentHeader
	if len(b) < 5 || b[0] != 0 {
		return Decoded{}, ErrNotWireFormat
	}
	id, rest, err := h.DecodeID(b)
	if err != nil {
		return Decoded{}, err
	}
	dec, err := d.decoder(ctx, id)
	if err != nil {
		return Decoded{}, err
	}
	out := Decoded{ID: id, Subject: dec.subject}
	switch dec.typ {
	case sr.TypeAvro:
		var v any
		if err := avro.Unmarshal(dec.avro, rest, &v); err != nil {
			return out, fmt.Errorf("avro datum of schema %d: %w", id, err)
		}
		out.Data = v
	case sr.TypeJSON:
		if err := json.Unmarshal(rest, &out.Data); err != nil {
			return out, fmt.Errorf("json value of schema %d: %w", id, err)
		}
	case sr.TypeProtobuf:
		index, payload, err := h.DecodeIndex(rest, 64)
		if err != nil {
			return out, fmt.Errorf("protobuf message indexes: %w", err)
		}
		md, err := d.protoMessage(ctx, id, dec.text, index)
		if err != nil {
			return out, err
		}
		m := dynamicpb.NewMessage(md)
		if err := protoUnmarshal(payload, m); err != nil {
			return out, fmt.Errorf("protobuf message of schema %d: %w", id, err)
		}
		j, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
		if err != nil {
			return out, err
		}
		if err := json.Unmarshal(j, &out.Data); err != nil {
			return out, err
		}
	default:
		return out, fmt.Errorf("schema %d has type %s, which is not supported", id, dec.typ)
	}
	return out, nil
}

func (d *Deserializer) decoder(ctx context.Context, id int) (*decoder, error) {
	d.mu.Lock()
	dec := d.byID[id]
	d.mu.Unlock()
	if dec != nil {
		return dec, nil
	}
	s, err := d.cl.SchemaByID(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("schema registry: schema %d: %w", id, err)
	}
	if len(s.References) > 0 {
		return nil, fmt.Errorf("schema %d has references, which are not supported", id)
	}
	dec = &decoder{typ: s.Type, text: s.Schema}
	if dec.typ == sr.TypeAvro {
		if dec.avro, err = avro.ParseWithCache(s.Schema, "", &avro.SchemaCache{}); err != nil {
			return nil, fmt.Errorf("schema %d: %w", id, err)
		}
	}
	if subjects, err := d.cl.SubjectsByID(ctx, id); err == nil && len(subjects) > 0 {
		dec.subject = subjects[0]
	}
	d.mu.Lock()
	d.byID[id] = dec
	d.mu.Unlock()
	return dec, nil
}

func (d *Deserializer) protoMessage(ctx context.Context, id int, text string, index []int) (protoreflect.MessageDescriptor, error) {
	key := fmt.Sprint(id, index)
	d.mu.Lock()
	md := d.proto[key]
	d.mu.Unlock()
	if md != nil {
		return md, nil
	}
	md, err := compileProto(ctx, text, index)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.proto[key] = md
	d.mu.Unlock()
	return md, nil
}

func protoUnmarshal(b []byte, m *dynamicpb.Message) error { return proto.Unmarshal(b, m) }
