package host

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/rivven/rivven-connect/shared/buildtag"
)

// Loader fetches a pipeline file from a URL.
type Loader func(ctx context.Context, url string) ([]byte, error)

var (
	loadersMu sync.RWMutex
	loaders   = map[string]Loader{}
)

// RegisterLoader makes RIVVEN_PIPELINE accept URLs of a scheme ("s3",
// "gs"). Loaders register themselves from files behind build tags
// (loaders.s3, loaders.gcs), so that a function built with -tags custom
// links a cloud SDK only when it reads its pipeline from that cloud's
// storage.
func RegisterLoader(scheme string, l Loader) {
	loadersMu.Lock()
	defer loadersMu.Unlock()
	loaders[scheme] = l
}

// Loaders lists the URL schemes this build can read pipelines from.
func Loaders() []string {
	loadersMu.RLock()
	defer loadersMu.RUnlock()
	out := make([]string, 0, len(loaders))
	for s := range loaders {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// buildTags names the tag that links each known loader, for errors.
var buildTags = map[string]string{"s3": buildtag.Loader("s3"), "gs": buildtag.Loader("gcs")}

// ReadPipeline returns the pipeline document RIVVEN_PIPELINE refers to and
// where it came from ("" for inline YAML). A value with a line break, or
// starting with "{", is the YAML itself; scheme://... is a URL for a
// registered loader; anything else is a file path.
func ReadPipeline(ctx context.Context, ref string) (doc []byte, where string, err error) {
	if isInline(ref) {
		return []byte(ref), "", nil
	}
	if isURL(ref) {
		scheme, _, _ := strings.Cut(ref, "://")
		loadersMu.RLock()
		l := loaders[scheme]
		loadersMu.RUnlock()
		if l == nil {
			hint := ""
			if tag := buildTags[scheme]; tag != "" {
				hint = fmt.Sprintf("; build the function with the tag %s (or without -tags custom)", tag)
			}
			have := "none"
			if ls := Loaders(); len(ls) > 0 {
				have = strings.Join(ls, ", ")
			}
			return nil, "", fmt.Errorf("RIVVEN_PIPELINE: this build cannot read %s:// URLs (it reads: %s)%s", scheme, have, hint)
		}
		b, err := l(ctx, ref)
		if err != nil {
			return nil, "", fmt.Errorf("RIVVEN_PIPELINE: %w", err)
		}
		return b, ref, nil
	}
	b, err := os.ReadFile(ref)
	if err != nil {
		return nil, "", fmt.Errorf("RIVVEN_PIPELINE: %w", err)
	}
	return b, ref, nil
}

// isInline reports whether a RIVVEN_PIPELINE value is the YAML itself.
func isInline(ref string) bool {
	return strings.ContainsAny(ref, "\n\r") || strings.HasPrefix(ref, "{")
}

// isURL reports whether a RIVVEN_PIPELINE value that is not inline YAML
// is a scheme://... URL rather than a file path.
func isURL(ref string) bool {
	scheme, _, ok := strings.Cut(ref, "://")
	return ok && !strings.ContainsAny(scheme, "/\\")
}
