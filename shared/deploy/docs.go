package deploy

import (
	"bytes"
	"fmt"
	"strings"
)

// Markers delimit the generated part of a module README.
const (
	DocsBegin = "<!-- BEGIN_TF_DOCS (generated from the .tf files by go test ./shared/deploy/ with UPDATE_TERRAFORM=1) -->"
	DocsEnd   = "<!-- END_TF_DOCS -->"
)

// Docs renders a module's inputs and outputs as Markdown tables, in the
// order they are declared, from the HCL itself so that they cannot drift.
func Docs(m *Module) string {
	var b strings.Builder
	b.WriteString("## Inputs\n\n| name | type | default | description |\n|---|---|---|---|\n")
	for _, v := range m.Variables {
		def := "required"
		if v.HasDefault {
			def = code(v.Default)
		}
		desc := v.Description
		if v.Sensitive {
			desc += " (sensitive)"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", v.Name, code(v.Type), def, text(desc))
	}
	b.WriteString("\n## Outputs\n\n| name | description |\n|---|---|\n")
	for _, o := range m.Outputs {
		desc := o.Description
		if o.Sensitive {
			desc += " (sensitive)"
		}
		fmt.Fprintf(&b, "| `%s` | %s |\n", o.Name, text(desc))
	}
	return b.String()
}

// code quotes source text for a table cell; a backquote inside would end
// the code span, so such text is shown with doubled delimiters.
func code(s string) string {
	s = cell(s)
	if strings.Contains(s, "`") {
		return "`` " + s + " ``"
	}
	return "`" + s + "`"
}

// text escapes prose for a table cell: <name> would read as an HTML tag.
func text(s string) string {
	return strings.NewReplacer("<", "&lt;", ">", "&gt;").Replace(cell(s))
}

func cell(s string) string {
	return strings.ReplaceAll(strings.Join(strings.Fields(s), " "), "|", `\|`)
}

// SpliceDocs replaces what lies between the markers of readme with docs.
func SpliceDocs(readme []byte, docs string) ([]byte, error) {
	i := bytes.Index(readme, []byte(DocsBegin))
	j := bytes.Index(readme, []byte(DocsEnd))
	if i < 0 || j < i {
		return nil, fmt.Errorf("the README has no %q … %q markers", DocsBegin, DocsEnd)
	}
	var out bytes.Buffer
	out.Write(readme[:i+len(DocsBegin)])
	out.WriteString("\n\n")
	out.WriteString(docs)
	out.WriteString("\n")
	out.Write(readme[j:])
	return out.Bytes(), nil
}
