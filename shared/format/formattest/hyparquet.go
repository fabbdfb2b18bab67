// Package formattest reads objects the format package wrote with readers
// that share no code with the writers, for tests of the format package and
// of the sinks that use it.
package formattest

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/rivven/rivven-connect/shared/testenv"
)

//go:embed hyparquet-read.mjs
var hyparquetScript []byte

// ParquetFile is what hyparquet found in one file.
type ParquetFile struct {
	File string `json:"file"`
	// Paths holds, per row group, each column chunk's path_in_schema
	// (joined with dots).
	Paths [][]string `json:"paths"`
	// Rows are the records; INT64 values are decimal text (JavaScript
	// reads them as BigInt), other numbers json.Number.
	Rows []map[string]any `json:"rows"`
	// Error is hyparquet's message when it refused the file.
	Error string `json:"error"`
}

// ReadParquet reads files with hyparquet, a JavaScript Parquet reader
// independent of parquet-go (the writer) and arrow-go, in one node
// process. hyparquet is pinned in .ci/node/package-lock.json; without node
// or the package the test skips, or fails under RIVVEN_REQUIRE_SERVICES=1.
func ReadParquet(t testing.TB, files ...string) []ParquetFile {
	t.Helper()
	dir := testenv.NodeModule(t, "hyparquet")
	script := filepath.Join(t.TempDir(), "hyparquet-read.mjs")
	if err := os.WriteFile(script, hyparquetScript, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", append([]string{script, dir}, files...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("hyparquet: %v\n%s", err, stderr.String())
	}
	var res []ParquetFile
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 256<<20)
	for sc.Scan() {
		d := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		d.UseNumber()
		var f ParquetFile
		if err := d.Decode(&f); err != nil {
			t.Fatalf("hyparquet output: %v: %.200s", err, sc.Text())
		}
		res = append(res, f)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("hyparquet output: %v", err)
	}
	if len(res) != len(files) {
		t.Fatalf("hyparquet reported %d files, want %d:\n%s", len(res), len(files), stderr.String())
	}
	return res
}
