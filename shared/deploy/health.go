package deploy

import (
	"bytes"
	"errors"
	"fmt"

	"go.yaml.in/yaml/v3"
)

// enableHealth turns settings.health on in the deployment's copy of the
// pipeline. Cloud Run starts a service's instance once its container port
// answers and restarts it when /live fails; a source service serves
// nothing but its health port, so without it the service never becomes
// ready. The copy is edited as text (a line inserted, or a block appended,
// like the broker block) so that the user's file keeps its layout and
// comments. What it cannot edit safely — settings or settings.health in
// flow style, health.enabled written false — is refused with the fix.
func enableHealth(raw []byte, port int) ([]byte, error) {
	fix := fmt.Errorf("set settings.health.enabled: true in the pipeline file: Cloud Run starts a source service once port %d (settings.health.port) answers, so the services of this deployment never become ready without it", port)
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fix
	}
	top := doc.Content[0]
	settings := mappingValue(top, "settings")
	if settings == nil {
		out := append([]byte{}, raw...)
		if len(out) > 0 && out[len(out)-1] != '\n' {
			out = append(out, '\n')
		}
		return append(out, "\n# Added by rivven-connect deploy: Cloud Run starts a service once its health port answers.\nsettings:\n  health:\n    enabled: true\n"...), nil
	}
	if settings.Kind != yaml.MappingNode || settings.Style&yaml.FlowStyle != 0 || len(settings.Content) == 0 {
		return nil, fix
	}
	health := mappingValue(settings, "health")
	if health == nil {
		return insertLine(raw, settings.Content[0], "health: {enabled: true} # added by rivven-connect deploy: Cloud Run starts a service once this port answers")
	}
	if health.Kind != yaml.MappingNode || health.Style&yaml.FlowStyle != 0 || len(health.Content) == 0 || mappingValue(health, "enabled") != nil {
		return nil, fix
	}
	return insertLine(raw, health.Content[0], "enabled: true # added by rivven-connect deploy: Cloud Run starts a service once this port answers")
}

// mappingValue returns the value of key in a mapping node, or nil.
func mappingValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// insertLine inserts text as a line of its own before the line of sibling
// (the first key of a block mapping), indented as that key is.
func insertLine(raw []byte, sibling *yaml.Node, text string) ([]byte, error) {
	lines := bytes.SplitAfter(raw, []byte("\n"))
	at := sibling.Line - 1
	if at < 0 || at >= len(lines) || sibling.Column < 1 {
		return nil, errors.New("settings: cannot find where to add health")
	}
	var out []byte
	for i, l := range lines {
		if i == at {
			out = append(out, bytes.Repeat([]byte(" "), sibling.Column-1)...)
			out = append(out, text...)
			out = append(out, '\n')
		}
		out = append(out, l...)
	}
	return out, nil
}
