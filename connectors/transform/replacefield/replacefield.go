// Package replacefield renames, keeps or drops fields of every row image.
package replacefield

import (
	"bytes"
	"context"
	"fmt"
	"sort"

	"github.com/rivven/rivven-connect/connectors/transform/row"
	"github.com/rivven/rivven-connect/events"
	"github.com/rivven/rivven-connect/shared/catalog"
	"github.com/rivven/rivven-connect/shared/connector"
	"github.com/rivven/rivven-connect/shared/spec"
)

// Config is the transform's configuration. Renames apply after include and
// exclude, so those name the original fields.
type Config struct {
	Rename  map[string]string `yaml:"rename" doc:"Old name → new name; dot paths move nested fields."`
	Renames map[string]string `yaml:"renames" doc:"Same as rename (the spelling of the reference implementation)."`
	Include []string          `yaml:"include" doc:"Keep only these top-level fields."`
	Exclude []string          `yaml:"exclude" doc:"Drop these fields (dot paths allowed)."`
}

// Validate checks paths and that some change is asked for.
func (c *Config) Validate() []spec.Problem {
	var ps []spec.Problem
	if len(c.Rename)+len(c.Renames)+len(c.Include)+len(c.Exclude) == 0 {
		ps = append(ps, spec.Problem{Message: "give at least one of rename, include or exclude"})
	}
	for _, m := range []struct {
		key string
		m   map[string]string
	}{{"rename", c.Rename}, {"renames", c.Renames}} {
		for from, to := range m.m {
			for _, p := range []string{from, to} {
				if _, err := row.ParsePath(p); err != nil {
					ps = append(ps, spec.Problem{Path: m.key + "." + from, Message: err.Error()})
				}
			}
		}
	}
	for i, f := range c.Exclude {
		if _, err := row.ParsePath(f); err != nil {
			ps = append(ps, spec.Problem{Path: fmt.Sprintf("exclude[%d]", i), Message: err.Error()})
		}
	}
	return ps
}

func init() {
	catalog.RegisterTransform[Config](catalog.Meta{
		Name: "ReplaceField", Category: catalog.Transforms, Subcategory: "SMT",
		Description: "Renames, includes or excludes fields",
		Tags:        []string{"rename", "drop column", "whitelist", "blacklist"},
	}, New)
}

type rename struct {
	from, to row.Path
	toTok    []byte // to as a JSON key token, for the byte path
}

type replacer struct {
	include map[string]bool
	exclude []row.Path
	renames []rename
}

// New builds the transform.
func New(ctx context.Context, cfg *Config) (connector.Transform, error) {
	r := &replacer{}
	if len(cfg.Include) > 0 {
		r.include = map[string]bool{}
		for _, f := range cfg.Include {
			r.include[f] = true
		}
	}
	var err error
	if r.exclude, err = row.ParsePaths(cfg.Exclude); err != nil {
		return nil, err
	}
	all := map[string]string{}
	for k, v := range cfg.Renames {
		all[k] = v
	}
	for k, v := range cfg.Rename {
		all[k] = v
	}
	froms := make([]string, 0, len(all))
	for k := range all {
		froms = append(froms, k)
	}
	sort.Strings(froms) // a stable order when renames touch the same parent
	for _, f := range froms {
		from, _ := row.ParsePath(f)
		to, _ := row.ParsePath(all[f])
		r.renames = append(r.renames, rename{from: from, to: to, toTok: events.AppendJSONString(nil, to.String())})
	}
	return row.Each(r.apply), nil
}

func (r *replacer) apply(_ context.Context, e *events.Event) error {
	if handled, err := row.EditRaw(e, r.applyRaw); handled {
		return err
	}
	rows, err := row.Mutable(e)
	if err != nil {
		return err
	}
	for _, m := range rows {
		if r.include != nil {
			for k := range m {
				if !r.include[k] {
					delete(m, k)
				}
			}
		}
		for _, p := range r.exclude {
			p.Delete(m)
		}
		for _, rn := range r.renames {
			v, ok := rn.from.Get(m)
			if !ok {
				continue
			}
			rn.from.Delete(m)
			if err := rn.to.Set(m, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// applyRaw is apply on a row's bytes, in the same order (include,
// exclude, renames), for top-level fields; a dotted path takes the map
// path.
func (r *replacer) applyRaw(o *events.Object) (bool, error) {
	changed := false
	if r.include != nil {
		for i := 0; i < o.Len(); {
			tok := o.Field(i).Key
			if bytes.IndexByte(tok, '\\') >= 0 {
				return false, row.ErrNotRaw // an escaped key: compare decoded names
			}
			if r.include[string(tok[1:len(tok)-1])] {
				i++
				continue
			}
			o.DeleteAt(i)
			changed = true
		}
	}
	for _, p := range r.exclude {
		if len(p) != 1 {
			return false, row.ErrNotRaw
		}
		if o.Delete(p[0]) {
			changed = true
		}
	}
	for _, rn := range r.renames {
		if len(rn.from) != 1 || len(rn.to) != 1 {
			return false, row.ErrNotRaw
		}
		if o.RenameKey(rn.from[0], rn.toTok) {
			changed = true
		}
	}
	return changed, nil
}
