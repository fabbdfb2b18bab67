//go:build unix

package objectstorage

import (
	"errors"

	"golang.org/x/sys/unix"
)

// setFileMark sets a user extended attribute; a file system without them
// is not an error (the object is then unmarked).
func setFileMark(path, name, value string) error {
	err := unix.Setxattr(path, name, []byte(value), 0)
	if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) {
		return nil
	}
	return err
}

// fileMark reads a user extended attribute: false when there is none
// (ENODATA; ENOATTR on macOS), none are supported, or it is unreadable.
func fileMark(path, name string) (string, bool) {
	buf := make([]byte, 32)
	n, err := unix.Getxattr(path, name, buf)
	if err != nil {
		return "", false
	}
	return string(buf[:n]), true
}
