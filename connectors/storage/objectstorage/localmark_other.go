//go:build !unix

package objectstorage

// Without extended attributes (Windows, Plan 9, WASI) local objects stay
// unmarked: the sink never replaces one and names a rewrite after its last
// offset instead, which loses nothing.
func setFileMark(path, name, value string) error { return nil }

func fileMark(path, name string) (string, bool) { return "", false }
