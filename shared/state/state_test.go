package state

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rivven/rivven-connect/shared/testenv"
)

const realRedis = "127.0.0.1:6379"

// backends runs fn once per Store implementation: the embedded miniredis
// and the real Redis (skipped locally when absent, fatal under CI).
func backends(t *testing.T, fn func(t *testing.T, r *Redis)) {
	t.Run("embedded", func(t *testing.T) {
		e, err := NewEmbedded()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Close() })
		fn(t, e.Redis)
	})
	t.Run("redis", func(t *testing.T) {
		testenv.RequireService(t, "redis", realRedis)
		r, err := NewRedis("redis://" + realRedis + "/0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		fn(t, r)
	})
}

// connector returns a name unique to this run, so runs against a shared
// Redis never see each other's data, and deletes its keys afterwards.
func connector(t *testing.T, r *Redis) string {
	t.Helper()
	name := fmt.Sprintf("test-%s-%d", t.Name(), time.Now().UnixNano())
	t.Cleanup(func() {
		if err := r.client.Del(context.Background(), Key(name, offsetsSuffix)).Err(); err != nil {
			t.Errorf("cleanup %s: %v", name, err)
		}
	})
	return name
}

func TestStore(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, ctx context.Context, r *Redis)
	}{
		{"missing offset is nil", func(t *testing.T, ctx context.Context, r *Redis) {
			c := connector(t, r)
			pos, err := r.Offset(ctx, c, "never-committed")
			if err != nil || pos != nil {
				t.Fatalf("Offset = %q, %v; want nil, nil", pos, err)
			}
		}},
		{"commit then read", func(t *testing.T, ctx context.Context, r *Redis) {
			c := connector(t, r)
			mustCommit(t, r, c, "orders", []byte("lsn:42"))
			wantOffset(t, r, c, "orders", []byte("lsn:42"))
		}},
		{"overwrite", func(t *testing.T, ctx context.Context, r *Redis) {
			c := connector(t, r)
			mustCommit(t, r, c, "orders", []byte("lsn:1"))
			mustCommit(t, r, c, "orders", []byte("lsn:2"))
			wantOffset(t, r, c, "orders", []byte("lsn:2"))
		}},
		{"offsets map", func(t *testing.T, ctx context.Context, r *Redis) {
			c := connector(t, r)
			empty, err := r.Offsets(ctx, c)
			if err != nil || empty == nil || len(empty) != 0 {
				t.Fatalf("Offsets before commit = %v, %v; want empty non-nil map", empty, err)
			}
			want := map[string][]byte{"a": []byte("1"), "b": []byte("2"), "c": []byte("3")}
			for k, v := range want {
				mustCommit(t, r, c, k, v)
			}
			got, err := r.Offsets(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("Offsets = %q, want %q", got, want)
			}
			for k, v := range want {
				if !bytes.Equal(got[k], v) {
					t.Errorf("Offsets[%q] = %q, want %q", k, got[k], v)
				}
			}
		}},
		{"connectors are isolated", func(t *testing.T, ctx context.Context, r *Redis) {
			c1, c2 := connector(t, r), connector(t, r)
			mustCommit(t, r, c1, "orders", []byte("one"))
			mustCommit(t, r, c2, "orders", []byte("two"))
			mustCommit(t, r, c2, "only-two", []byte("x"))
			wantOffset(t, r, c1, "orders", []byte("one"))
			wantOffset(t, r, c2, "orders", []byte("two"))
			wantOffset(t, r, c1, "only-two", nil)
			got, err := r.Offsets(ctx, c1)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 {
				t.Errorf("Offsets(%s) = %q, want only its own key", c1, got)
			}
		}},
		{"binary positions survive", func(t *testing.T, ctx context.Context, r *Redis) {
			c := connector(t, r)
			pos := []byte{0x00, 0xff, 0xfe, 0xc3, 0x28, '\r', '\n', 0x80, 0x00}
			mustCommit(t, r, c, "bin\x00key", pos)
			wantOffset(t, r, c, "bin\x00key", pos)
			all, err := r.Offsets(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(all["bin\x00key"], pos) {
				t.Errorf("Offsets[bin key] = %x, want %x", all["bin\x00key"], pos)
			}
		}},
		{"offsets live under the tagged key", func(t *testing.T, ctx context.Context, r *Redis) {
			c := connector(t, r)
			mustCommit(t, r, c, "orders", []byte("1"))
			key := Key(c, offsetsSuffix)
			if !strings.Contains(key, "{"+c+"}") {
				t.Errorf("key %q lacks hash tag {%s}", key, c)
			}
			n, err := r.client.Exists(ctx, key).Result()
			if err != nil || n != 1 {
				t.Errorf("EXISTS %s = %d, %v; want 1", key, n, err)
			}
		}},
		{"invalid connector is rejected", func(t *testing.T, ctx context.Context, r *Redis) {
			for _, c := range []string{"", "a{b", "a}b", "{x}"} {
				if err := r.CommitOffset(ctx, c, "k", []byte("v")); !errors.Is(err, ErrInvalidConnector) {
					t.Errorf("CommitOffset(%q) error = %v, want ErrInvalidConnector", c, err)
				}
				if _, err := r.Offset(ctx, c, "k"); !errors.Is(err, ErrInvalidConnector) {
					t.Errorf("Offset(%q) error = %v, want ErrInvalidConnector", c, err)
				}
				if _, err := r.Offsets(ctx, c); !errors.Is(err, ErrInvalidConnector) {
					t.Errorf("Offsets(%q) error = %v, want ErrInvalidConnector", c, err)
				}
			}
		}},
	}
	backends(t, func(t *testing.T, r *Redis) {
		if err := r.Ping(t.Context()); err != nil {
			t.Fatal(err)
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) { tc.run(t, t.Context(), r) })
		}
	})
}

func mustCommit(t *testing.T, r *Redis, connector, key string, pos []byte) {
	t.Helper()
	if err := r.CommitOffset(t.Context(), connector, key, pos); err != nil {
		t.Fatalf("CommitOffset(%s, %q): %v", connector, key, err)
	}
}

func wantOffset(t *testing.T, r *Redis, connector, key string, want []byte) {
	t.Helper()
	got, err := r.Offset(t.Context(), connector, key)
	if err != nil {
		t.Fatalf("Offset(%s, %q): %v", connector, key, err)
	}
	if !bytes.Equal(got, want) || (want == nil) != (got == nil) {
		t.Fatalf("Offset(%s, %q) = %q, want %q", connector, key, got, want)
	}
}

// TestKeySlot checks that all keys of one connector land in one Redis
// Cluster slot, which is what makes multi-key scripts over them legal.
func TestKeySlot(t *testing.T) {
	// Reference values from the Redis cluster spec and `CLUSTER KEYSLOT`.
	if got := crc16([]byte("123456789")); got != 0x31c3 {
		t.Fatalf("crc16 self-check = %#x, want 0x31c3", got)
	}
	if got := keySlot("foo"); got != 12182 {
		t.Fatalf("keySlot(foo) = %d, want 12182", got)
	}

	for _, c := range []string{"pg-orders", "mysql:inventory", "x", "with space/and:colons"} {
		want := keySlot(Key(c, offsetsSuffix))
		for _, suffix := range []string{"epoch", "breaker", "ratelimit:sink", "{odd}suffix"} {
			if got := keySlot(Key(c, suffix)); got != want {
				t.Errorf("slot(%s) = %d, slot(%s) = %d: want equal",
					Key(c, suffix), got, Key(c, offsetsSuffix), want)
			}
		}
	}
}

// keySlot is Redis Cluster's HASH_SLOT: CRC16 of the hash tag (the text
// between the first '{' and the next '}', if non-empty) or else of the key.
func keySlot(key string) uint16 {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if end := strings.IndexByte(key[open+1:], '}'); end > 0 {
			key = key[open+1 : open+1+end]
		}
	}
	return crc16([]byte(key)) % 16384
}

// crc16 is CRC-16/XMODEM (poly 0x1021, init 0), the variant Redis uses.
func crc16(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc ^= uint16(c) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

func TestOpen(t *testing.T) {
	t.Run("empty url is embedded", func(t *testing.T) {
		s, err := Open(t.Context(), "")
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, ok := s.(*Embedded); !ok {
			t.Fatalf("Open(\"\") = %T, want *Embedded", s)
		}
		if err := s.Ping(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("real redis", func(t *testing.T) {
		testenv.RequireService(t, "redis", realRedis)
		s, err := Open(t.Context(), "redis://"+realRedis+"/0")
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, ok := s.(*Redis); !ok {
			t.Fatalf("Open = %T, want *Redis", s)
		}
	})
	t.Run("cluster mode", func(t *testing.T) {
		// miniredis answers CLUSTER SLOTS as a one-node cluster, enough to
		// drive the cluster client end to end.
		e, err := NewEmbedded()
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		s, err := Open(t.Context(), "redis://"+e.Addr()+"?cluster=true")
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, ok := s.(*Redis).client.(*redis.ClusterClient); !ok {
			t.Fatalf("client = %T, want *redis.ClusterClient", s.(*Redis).client)
		}
		if err := s.CommitOffset(t.Context(), "c", "k", []byte("v")); err != nil {
			t.Fatal(err)
		}
		if got, err := e.Offset(t.Context(), "c", "k"); err != nil || string(got) != "v" {
			t.Fatalf("Offset via single-node client = %q, %v; want v", got, err)
		}
	})
}

// TestPasswordNeverInErrors: errors are logged, so a Redis password must
// not appear in any of them.
func TestPasswordNeverInErrors(t *testing.T) {
	const secret = "s3cret"

	t.Run("unreachable", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		s, err := Open(ctx, "redis://user:"+secret+"@127.0.0.1:1/0")
		if err == nil {
			s.Close()
			t.Fatal("Open of a closed port succeeded")
		}
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("error leaks password: %v", err)
		}
		if !strings.Contains(err.Error(), "user:****@127.0.0.1:1") {
			t.Errorf("error does not name the redacted URL: %v", err)
		}
	})

	for _, tc := range []struct{ name, url string }{
		{"url.Parse error", "redis://user:" + secret + "@host:badport/0"},
		{"control character", "redis://user:" + secret + "@host\x7f/0"},
		{"bad database", "redis://user:" + secret + "@host:6379/notanumber"},
		{"bad cluster flag", "redis://user:" + secret + "@host:6379/0?cluster=maybe"},
		{"unknown option", "redis://user:" + secret + "@host:6379/0?nope=1"},
		{"unknown cluster option", "redis://user:" + secret + "@host:6379?cluster=true&nope=1"},
		{"wrong scheme", "http://user:" + secret + "@host:6379/0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewRedis(tc.url)
			if err == nil {
				r.Close()
				t.Fatalf("NewRedis(%q) succeeded", tc.url)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error leaks password: %v", err)
			}
			t.Log(err)
		})
	}
}

func TestRedactURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"},
		{"redis://user@host:6379", "redis://user@host:6379"},
		{"redis://user:pw@host:6379/0", "redis://user:****@host:6379/0"},
		{"rediss://:pw@host:6379?cluster=true", "rediss://:****@host:6379?cluster=true"},
		{"redis://us%20er:p%40w@host", "redis://us%20er:****@host"},
		{"redis://user:pw@host:bad/0", "redis://****@host:bad/0"},
	} {
		if got := redactURL(tc.in); got != tc.want {
			t.Errorf("redactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
