package sqlrow

import "testing"

func TestPGArrays(t *testing.T) {
	a, ok := ParsePGArray(`{1,NULL,"a \"b\" \\c",{2,3}}`)
	if !ok || len(a) != 4 || a[1] != nil || a[2] != `a "b" \c` {
		t.Fatalf("%#v %v", a, ok)
	}
	if _, ok := ParsePGArray(`{1,2`); ok {
		t.Error("unterminated array parsed")
	}
	if a, ok := ParsePGArray(`[0:1]={7,8}`); !ok || len(a) != 2 {
		t.Errorf("bounds|%#v", a)
	}
}
