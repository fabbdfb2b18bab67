package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rivven/rivven-connect/shared/schema/srtest"
	"github.com/rivven/rivven-connect/shared/secrets/vault/vaultfake"
	"github.com/rivven/rivven-connect/shared/testenv"
)

// TestVaultPluginAvroRegistryPipeline is the one pipeline that uses the
// three platform features together, run in local by a CLI built with
// --with: the external connector of examples/plugin signs its records
// with a key that a vault: reference reads from Vault (AppRole login),
// and a kafka-sink writes them as Avro under a schema it registers. The
// records are read back from the Kafka topic and decoded by goavro with
// the schema the registry holds for each record's id; the signatures are
// checked with the key, which the run's output never shows.
func TestVaultPluginAvroRegistryPipeline(t *testing.T) {
	if testing.Short() {
		testenv.Unavailable(t, "-short: this test builds a CLI")
	}
	const key = "hmac-key-from-vault-7f3a"
	v := vaultfake.Start(t)
	v.Put("secret/data/acme", map[string]any{"key": key})
	v.AddAppRole("role-1", "secret-1")

	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "signed"))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	reg := srtest.New()
	reg.User, reg.Password = "sr-user", "sr-pass"
	srv := reg.Server(false)
	defer srv.Close()

	pipeline := writeFile(t, fmt.Sprintf(`
secrets:
  provider: vault
  config:
    address: %s
    role_id: ${VAULT_ROLE_ID}
    secret_id: ${VAULT_SECRET_ID}
sources:
  counter:
    connector: acme-counter
    topic: counted
    config: {count: 24, batch_size: 5, key: "vault:secret/data/acme#key"}
sinks:
  kafka:
    connector: kafka-sink
    topics: [counted]
    config:
      brokers: [%q]
      topic: signed
      key_field: id
      schema_registry_url: %s
      schema_registry:
        format: avro
        subject_strategy: topic_record
        username: sr-user
        password: ${SR_PASSWORD}
`, v.URL, kc.ListenAddrs()[0], srv.URL))

	t.Setenv("GOPROXY", "off")
	t.Setenv("GOFLAGS", "-mod=mod")
	dir := t.TempDir()
	code, out, errOut := cli(t, "build", "-c", pipeline, "--with", "example.com/rivven-counter=../../examples/plugin", "--out", dir)
	if code != 0 {
		t.Fatalf("build: exit %d: %s%s", code, out, errOut)
	}
	bin := filepath.Join(dir, "rivven-connect")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run := exec.CommandContext(ctx, bin, "local", "-c", pipeline, "--max-events", "24")
	run.Env = append(os.Environ(), "VAULT_ROLE_ID=role-1", "VAULT_SECRET_ID=secret-1", "SR_PASSWORD=sr-pass")
	output, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("local: %v\n%s", err, output)
	}
	if strings.Contains(string(output), key) {
		t.Errorf("the run's output shows the secret:\n%s", output)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.ConsumeTopics("signed"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for len(recs) < 24 && ctx.Err() == nil {
		recs = append(recs, cl.PollFetches(ctx).Records()...)
	}
	if len(recs) != 24 {
		t.Fatalf("%d records on the topic, want 24", len(recs))
	}
	seen := map[int64]bool{}
	for _, r := range recs {
		if r.Value[0] != 0 {
			t.Fatalf("no magic byte: % x", r.Value[:8])
		}
		id := int(binary.BigEndian.Uint32(r.Value[1:5]))
		text, typ, ok := reg.Schema(id)
		if !ok || typ != "AVRO" {
			t.Fatalf("schema id %d: %v %s", id, ok, typ)
		}
		codec, err := goavro.NewCodec(text)
		if err != nil {
			t.Fatal(err)
		}
		native, rest, err := codec.NativeFromBinary(r.Value[5:])
		if err != nil || len(rest) > 0 {
			t.Fatalf("goavro: %v", err)
		}
		m := native.(map[string]any)
		n, ok := m["id"].(int32)
		if !ok {
			t.Fatalf("id %T in %v", m["id"], m)
		}
		mac := hmac.New(sha256.New, []byte(key))
		mac.Write([]byte(strconv.Itoa(int(n))))
		if m["signature"] != hex.EncodeToString(mac.Sum(nil)) {
			t.Errorf("record %d: signature %v is not HMAC-SHA256 under the vault key", n, m["signature"])
		}
		if string(r.Key) != strconv.Itoa(int(n)) {
			t.Errorf("record %d: key %q", n, r.Key)
		}
		seen[int64(n)] = true
	}
	if len(seen) != 24 {
		t.Errorf("%d distinct records, want 24", len(seen))
	}
	// price appears on every third record, an integer on even ones and a
	// fraction on odd ones: int, then nullable, then double — three
	// versions of the topic_record subject.
	if vs := reg.Subjects()["signed-rivven.events.counter"]; len(vs) < 2 {
		t.Errorf("subject versions %v (subjects %v)", vs, reg.Subjects())
	}
}
