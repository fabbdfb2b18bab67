// Package cdctest holds test inputs every CDC source is checked against,
// so that the same row gives the same bytes whichever database it came
// from.
package cdctest

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// StringCase is one column value and the exact JSON a source must write
// for it.
type StringCase struct {
	In   string
	Want []byte
}

// StringCases reads testdata/strings.txt (Go-quoted inputs) and
// testdata/strings.golden (the JSON of each, line by line). The golden
// text is fixed, not computed by the code under test: it writes <, > and
// & verbatim, control characters as serde_json does and invalid UTF-8 as
// U+FFFD per bad byte.
func StringCases(t testing.TB) []StringCase {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(here), "testdata")
	in, err := os.ReadFile(filepath.Join(dir, "strings.txt"))
	if err != nil {
		t.Fatal(err)
	}
	golden, err := os.ReadFile(filepath.Join(dir, "strings.golden"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []StringCase
	sc := bufio.NewScanner(bytes.NewReader(in))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := strconv.Unquote(line)
		if err != nil {
			t.Fatalf("strings.txt: %s: %v", line, err)
		}
		cases = append(cases, StringCase{In: s})
	}
	want := bytes.Split(bytes.TrimSuffix(golden, []byte("\n")), []byte("\n"))
	if len(want) != len(cases) {
		t.Fatalf("strings.golden has %d lines for %d inputs", len(want), len(cases))
	}
	for i := range cases {
		cases[i].Want = want[i]
	}
	return cases
}
