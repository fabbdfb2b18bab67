package state

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// ErrInvalidConnector is returned for a connector name that cannot be used
// as a Redis hash tag: empty, or containing '{' or '}'.
var ErrInvalidConnector = errors.New("invalid connector name")

// keyPrefix namespaces every key so a shared Redis can host other tenants.
const keyPrefix = "rivven:"

// offsetsSuffix names the HASH holding a connector's offsets: one field per
// offset key, so Offsets is a single HGETALL.
const offsetsSuffix = "offsets"

// Key returns the Redis key for one piece of a connector's state:
// "rivven:{connector}:suffix". The braces are a Redis Cluster hash tag, so
// every key of a connector maps to the same slot and multi-key commands and
// scripts over them stay legal on a cluster. Everything that stores
// connector state (offsets, epochs, breakers, rate limits) must build its
// keys here.
//
// connector must satisfy ValidateConnector; Key does not check it because
// the Store methods do, and callers building their own keys should too.
func Key(connector, suffix string) string {
	return keyPrefix + "{" + connector + "}:" + suffix
}

// ValidateConnector rejects names that would break the hash tag. Braces are
// refused rather than escaped: any escaping could make two distinct names
// share keys, and an empty tag "{}" makes Redis hash the whole key, which
// would scatter a connector's keys over slots.
func ValidateConnector(connector string) error {
	if connector == "" || strings.ContainsAny(connector, "{}") {
		return fmt.Errorf("%w %q: must be non-empty and contain no '{' or '}'", ErrInvalidConnector, connector)
	}
	return nil
}

// Redis is a Store over any go-redis client: a single node, a Redis Cluster
// or a cluster-mode managed service such as ElastiCache Serverless.
type Redis struct {
	client redis.UniversalClient
	// where names the server in errors; it is a redacted URL, never one
	// carrying a password, because errors end up in logs.
	where string
}

var _ Store = (*Redis)(nil)

// NewRedis connects lazily to the server at rawURL; nothing is dialled until
// the first command (use Ping, or Open, to check reachability).
//
// Accepted forms are those of redis.ParseURL — redis://[user:pass@]host:port/db
// and rediss:// for TLS — plus the query parameter cluster=true, which
// switches to a cluster client (redis.ParseClusterURL: the database path is
// ignored and further seed nodes may be given as addr=host:port). Cluster
// mode is required for Redis Cluster and ElastiCache Serverless.
func NewRedis(rawURL string) (*Redis, error) {
	where := redactURL(rawURL)
	u, err := url.Parse(rawURL)
	if err != nil {
		// *url.Error repeats the raw URL, password included: keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("state: invalid redis URL %s: %w", where, err)
	}

	cluster := false
	q := u.Query()
	if v := q.Get("cluster"); v != "" {
		if cluster, err = strconv.ParseBool(v); err != nil {
			return nil, fmt.Errorf("state: invalid redis URL %s: cluster=%q is not a boolean", where, v)
		}
	}
	// go-redis rejects query parameters it does not know, so drop ours.
	q.Del("cluster")
	u.RawQuery = q.Encode()

	var client redis.UniversalClient
	if cluster {
		opts, err := redis.ParseClusterURL(u.String())
		if err != nil {
			return nil, fmt.Errorf("state: invalid redis URL %s: %w", where, err)
		}
		client = redis.NewClusterClient(opts)
	} else {
		opts, err := redis.ParseURL(u.String())
		if err != nil {
			return nil, fmt.Errorf("state: invalid redis URL %s: %w", where, err)
		}
		client = redis.NewClient(opts)
	}
	return &Redis{client: client, where: where}, nil
}

// NewRedisClient wraps a client the caller configured itself (custom TLS,
// credentials providers, ...). Close closes the client.
func NewRedisClient(c redis.UniversalClient) *Redis {
	return &Redis{client: c, where: "redis"}
}

// Offset implements Store.
func (r *Redis) Offset(ctx context.Context, connector, key string) ([]byte, error) {
	if err := ValidateConnector(connector); err != nil {
		return nil, r.wrap("read offset", err)
	}
	pos, err := r.client.HGet(ctx, Key(connector, offsetsSuffix), key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, r.wrap("read offset", err)
	}
	return pos, nil
}

// CommitOffset implements Store.
func (r *Redis) CommitOffset(ctx context.Context, connector, key string, position []byte) error {
	if err := ValidateConnector(connector); err != nil {
		return r.wrap("commit offset", err)
	}
	if err := r.client.HSet(ctx, Key(connector, offsetsSuffix), key, position).Err(); err != nil {
		return r.wrap("commit offset", err)
	}
	return nil
}

// Offsets implements Store. A connector without offsets gets an empty,
// non-nil map.
func (r *Redis) Offsets(ctx context.Context, connector string) (map[string][]byte, error) {
	if err := ValidateConnector(connector); err != nil {
		return nil, r.wrap("read offsets", err)
	}
	all, err := r.client.HGetAll(ctx, Key(connector, offsetsSuffix)).Result()
	if err != nil {
		return nil, r.wrap("read offsets", err)
	}
	out := make(map[string][]byte, len(all))
	for k, v := range all {
		out[k] = []byte(v)
	}
	return out, nil
}

// Ping implements Store.
func (r *Redis) Ping(ctx context.Context) error {
	if err := r.client.Ping(ctx).Err(); err != nil {
		return r.wrap("ping", err)
	}
	return nil
}

// Close implements Store.
func (r *Redis) Close() error {
	if err := r.client.Close(); err != nil {
		return r.wrap("close", err)
	}
	return nil
}

func (r *Redis) wrap(op string, err error) error {
	return fmt.Errorf("state: %s (%s): %w", op, r.where, err)
}

// redactURL returns rawURL with any password replaced by "****", for use in
// errors and logs.
func redactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		// Cannot tell where the password is; hide all user info.
		scheme, rest, ok := strings.Cut(rawURL, "://")
		if at := strings.LastIndex(rest, "@"); ok && at >= 0 {
			return scheme + "://****" + rest[at:]
		}
		if !ok && strings.Contains(rawURL, "@") {
			return "<unparseable URL>"
		}
		return rawURL
	}
	if _, has := u.User.Password(); !has {
		return u.String()
	}
	// Not url.UserPassword(name, "****"): String would escape the stars.
	user := url.User(u.User.Username()).String()
	u.User = nil
	return u.Scheme + "://" + user + ":****@" + strings.TrimPrefix(u.String(), u.Scheme+"://")
}
