package config

import "github.com/rivven/rivven-connect/shared/spec"

// ComponentSchemas gives the JSON Schema of each component's config block.
type ComponentSchemas interface {
	Names(kind string) []string
	ConfigSchema(kind, name string) (map[string]any, bool)
}

// JSONSchema returns the JSON Schema of the pipeline file, with each
// connector's config block typed by its connector name, for editor
// completion and CI linting.
func JSONSchema(cat ComponentSchemas) map[string]any {
	root := spec.JSONSchema(spec.FieldsOf(reflectType[File]()))
	root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	root["title"] = "rivven-connect pipeline"
	props := root["properties"].(map[string]any)
	for _, sec := range []struct{ key, kind string }{{"sources", "source"}, {"sinks", "sink"}} {
		entry := props[sec.key].(map[string]any)["additionalProperties"].(map[string]any)
		names := cat.Names(sec.kind)
		var cases []any
		for _, n := range names {
			s, ok := cat.ConfigSchema(sec.kind, n)
			if !ok {
				continue
			}
			cases = append(cases, map[string]any{
				"if":   map[string]any{"properties": map[string]any{"connector": map[string]any{"const": n}}, "required": []string{"connector"}},
				"then": map[string]any{"properties": map[string]any{"config": s}},
			})
		}
		if len(names) > 0 {
			entry["properties"].(map[string]any)["connector"].(map[string]any)["enum"] = names
		}
		if len(cases) > 0 {
			entry["allOf"] = cases
		}
	}
	return root
}
