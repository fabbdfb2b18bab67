package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rivven/rivven-connect/connectors/ai/llm/llmfake"
	"github.com/rivven/rivven-connect/connectors/ai/qdrant/qdrantfake"
	"github.com/rivven/rivven-connect/shared/testenv"
)

// TestRAGSample runs samples/pipelines/rag.yaml in `local` against the
// local PostgreSQL, an OpenAI-compatible fake (the chat model answers a
// sentiment, the embedding model is the deterministic word-hashing one)
// and the Qdrant gRPC fake, and checks that the collection holds exactly
// one point per row, with the row's fields, the model's sentiment and the
// text's embedding; then a second run after an update and a delete (the
// slot streams them) leaves the points matching the table again.
func TestRAGSample(t *testing.T) {
	testenv.RequireService(t, "postgresql", "127.0.0.1:5432")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	name := fmt.Sprintf("rag_reviews_%d", time.Now().UnixNano()%1e9)
	reviews := map[int]string{
		1: "I love this blender, it is great",
		2: "It broke on day one, bad quality",
		3: "Arrived on Tuesday in a box",
		4: "Great value and I love the colour",
		5: "Bad smell and it broke twice",
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE "+name+" (id int PRIMARY KEY, text text, stars int)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c := context.Background()
		conn.Exec(c, "DROP PUBLICATION IF EXISTS "+name)
		conn.Exec(c, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", name)
		conn.Exec(c, "DROP TABLE IF EXISTS "+name)
	})
	for id, text := range reviews {
		if _, err := conn.Exec(ctx, "INSERT INTO "+name+" VALUES ($1, $2, $3)", id, text, id); err != nil {
			t.Fatal(err)
		}
	}

	ai := llmfake.NewOpenAI()
	defer ai.Close()
	ai.APIKey = "sk-rag"
	ai.Answer = func(system, prompt string) (string, string) {
		p := strings.ToLower(prompt)
		switch {
		case !strings.Contains(system, "positive/negative/neutral"):
			return "no system prompt", "stop"
		case strings.Contains(p, "love"):
			return "positive", "stop"
		case strings.Contains(p, "bad"):
			return "negative", "stop"
		}
		return "neutral", "stop"
	}
	qd, err := qdrantfake.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer qd.Close()

	const dim = 32
	for k, v := range map[string]string{
		"PG_HOST": "127.0.0.1", "PG_PORT": "5432", "PG_DATABASE": "test", "PG_USER": "postgres", "PG_PASSWORD": "",
		"RAG_SLOT": name, "RAG_PUBLICATION": name, "RAG_TABLE": "public." + name, "RAG_SNAPSHOT_MODE": "initial",
		"OPENAI_API_KEY": "sk-rag", "OPENAI_BASE_URL": ai.BaseURL(), "EMBEDDING_DIM": fmt.Sprint(dim),
		"QDRANT_URL": qd.URL(), "QDRANT_COLLECTION": name, "QDRANT_API_KEY": "",
	} {
		t.Setenv(k, v)
	}
	// check creates the collection (create_collection) and sees the model
	// server and PostgreSQL answer.
	if code, out, errOut := cli(t, "check", "-c", "../../samples/pipelines/rag.yaml"); code != 0 {
		t.Fatalf("check: exit %d\n%s%s", code, out, errOut)
	}
	// Each run reads what the slot holds and stops after --duration; the
	// points are compared after it ended, so a slow machine can only make
	// the run fail loudly (points missing), never pass wrongly.
	run := func() {
		t.Helper()
		code, out, errOut := cli(t, "local", "-c", "../../samples/pipelines/rag.yaml", "--duration", "10s", "--json")
		if code != 0 {
			t.Fatalf("local: exit %d\n%s%s", code, out, errOut)
		}
	}
	match := func() {
		t.Helper()
		pts := qd.Points(name)
		if len(pts) != len(reviews) {
			t.Fatalf("%d points for %d rows: %+v", len(pts), len(reviews), pts)
		}
		for _, p := range pts {
			id, _ := p.Payload["id"].(int64)
			text, ok := reviews[int(id)]
			if !ok || p.Payload["text"] != text || p.Payload["stars"] != id {
				t.Fatalf("point %s payload %v matches no row", p.ID, p.Payload)
			}
			want := "neutral"
			if l := strings.ToLower(text); strings.Contains(l, "love") {
				want = "positive"
			} else if strings.Contains(l, "bad") {
				want = "negative"
			}
			if p.Payload["sentiment"] != want {
				t.Errorf("row %d: sentiment %v, want %s", id, p.Payload["sentiment"], want)
			}
			vec := llmfake.HashEmbedding(text, dim)
			for i, f := range p.Vectors[""] {
				if f != float32(vec[i]) {
					t.Fatalf("row %d: vector %v is not the embedding of its text", id, p.Vectors[""])
				}
			}
			if _, has := p.Payload["embedding"]; has {
				t.Errorf("row %d: the vector is also in the payload", id)
			}
		}
	}
	run()
	match()
	if ai.EmbedCalls.Load() > int64(len(reviews)) || ai.EmbedInputs.Load() != int64(len(reviews)) {
		t.Errorf("%d embedding requests for %d texts", ai.EmbedCalls.Load(), ai.EmbedInputs.Load())
	}

	// Streaming: an update re-classifies and re-embeds its row in place
	// (same point), a delete removes its point.
	if _, err := conn.Exec(ctx, "UPDATE "+name+" SET text = 'Now I love it' WHERE id = 2"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "DELETE FROM "+name+" WHERE id = 3"); err != nil {
		t.Fatal(err)
	}
	reviews[2] = "Now I love it"
	delete(reviews, 3)
	run()
	match()
}
