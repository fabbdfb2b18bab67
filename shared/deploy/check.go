// Package deploy generates Terraform root modules for a pipeline and checks
// Terraform code without Terraform: the provider plugins that `terraform
// validate` needs cannot be downloaded everywhere the tests run, so what can
// be checked from the HCL alone is checked here — syntax, canonical
// formatting, declarations and every reference between them.
package deploy

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
)

// Problem is one finding, placed at a file position.
type Problem struct {
	Pos string // file:line:col, or the directory for module-wide findings
	Msg string
}

func (p Problem) String() string { return p.Pos + ": " + p.Msg }

// Variable is a declared input variable.
type Variable struct {
	Name        string
	Type        string // source text of the type constraint; "" when missing
	Description string
	HasDesc     bool
	Default     string // source text of the default; "" when none
	HasDefault  bool
	Sensitive   bool
	Pos         hcl.Range

	defaultExpr hclsyntax.Expression
}

// Required reports whether a caller must set the variable.
func (v *Variable) Required() bool { return !v.HasDefault }

// Output is a declared output value.
type Output struct {
	Name        string
	Description string
	HasDesc     bool
	Sensitive   bool
	Pos         hcl.Range
}

// Call is a module block.
type Call struct {
	Name   string
	Source string // "" when it is not a string literal
	Args   map[string]*hclsyntax.Attribute
	Block  *hclsyntax.Block
}

// Module is one directory of .tf files, as Terraform reads it.
type Module struct {
	Dir       string
	Files     []string // base names, sorted
	Variables []*Variable
	Outputs   []*Output
	Locals    map[string]hcl.Range
	Calls     map[string]*Call
	Resources map[string]hcl.Range // "type.name"
	Data      map[string]hcl.Range // "type.name"
	Providers map[string]bool      // local names in required_providers

	bodies     map[string]*hclsyntax.Body
	src        map[string][]byte
	localExprs map[string]hclsyntax.Expression
	problems   []Problem
}

// Variable returns the variable called name, or nil.
func (m *Module) Variable(name string) *Variable {
	for _, v := range m.Variables {
		if v.Name == name {
			return v
		}
	}
	return nil
}

// Output returns the output called name, or nil.
func (m *Module) Output(name string) *Output {
	for _, o := range m.Outputs {
		if o.Name == name {
			return o
		}
	}
	return nil
}

// LoadModule parses every .tf file of dir. Problems of syntax, formatting
// and duplicate declarations are kept for Check.
func LoadModule(dir string) (*Module, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	m := &Module{
		Dir: dir, Locals: map[string]hcl.Range{}, Calls: map[string]*Call{},
		Resources: map[string]hcl.Range{}, Data: map[string]hcl.Range{}, Providers: map[string]bool{},
		bodies: map[string]*hclsyntax.Body{}, src: map[string][]byte{}, localExprs: map[string]hclsyntax.Expression{},
	}
	for _, e := range ents {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".tf") {
			m.Files = append(m.Files, e.Name())
		}
	}
	sort.Strings(m.Files)
	if len(m.Files) == 0 {
		return nil, fmt.Errorf("%s: no .tf files", dir)
	}
	for _, name := range m.Files {
		path := filepath.Join(dir, name)
		src, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		m.src[name] = src
		f, diags := hclsyntax.ParseConfig(src, path, hcl.Pos{Line: 1, Column: 1})
		for _, d := range diags {
			m.diag(d)
		}
		if diags.HasErrors() {
			continue
		}
		// terraform fmt writes what hclwrite.Format writes.
		if !bytes.Equal(hclwrite.Format(src), src) {
			m.problems = append(m.problems, Problem{path, "not in canonical format (run terraform fmt)"})
		}
		body := f.Body.(*hclsyntax.Body)
		m.bodies[name] = body
		m.declare(name, body)
	}
	return m, nil
}

func (m *Module) diag(d *hcl.Diagnostic) {
	pos := m.Dir
	if d.Subject != nil {
		pos = posOf(*d.Subject)
	}
	m.problems = append(m.problems, Problem{pos, d.Summary + ": " + d.Detail})
}

func posOf(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}

func (m *Module) text(file string, r hcl.Range) string {
	return strings.Join(strings.Fields(string(r.SliceBytes(m.src[file]))), " ")
}

func (m *Module) add(r hcl.Range, format string, args ...any) {
	m.problems = append(m.problems, Problem{posOf(r), fmt.Sprintf(format, args...)})
}

// labels says how many labels each top-level block takes.
var labels = map[string]int{
	"terraform": 0, "locals": 0, "moved": 0, "import": 0, "removed": 0,
	"variable": 1, "output": 1, "module": 1, "provider": 1, "check": 1,
	"resource": 2, "data": 2,
}

func (m *Module) declare(file string, body *hclsyntax.Body) {
	for name, a := range body.Attributes {
		m.add(a.SrcRange, "unexpected top-level attribute %q", name)
	}
	for _, b := range body.Blocks {
		n, known := labels[b.Type]
		if !known {
			m.add(b.TypeRange, "unknown block type %q", b.Type)
			continue
		}
		if len(b.Labels) != n {
			m.add(b.TypeRange, "%s block needs %d label(s), has %d", b.Type, n, len(b.Labels))
			continue
		}
		switch b.Type {
		case "variable":
			m.declareVariable(file, b)
		case "output":
			o := &Output{Name: b.Labels[0], Pos: b.DefRange()}
			if m.Output(o.Name) != nil {
				m.add(b.DefRange(), "output %q is declared twice", o.Name)
			}
			if a, ok := b.Body.Attributes["description"]; ok {
				o.Description, o.HasDesc = literal(a.Expr)
			}
			if a, ok := b.Body.Attributes["sensitive"]; ok {
				v, _ := a.Expr.Value(nil)
				o.Sensitive = v.IsKnown() && !v.IsNull() && v.True()
			}
			if _, ok := b.Body.Attributes["value"]; !ok {
				m.add(b.DefRange(), "output %q has no value", o.Name)
			}
			m.Outputs = append(m.Outputs, o)
		case "locals":
			for name, a := range b.Body.Attributes {
				if _, dup := m.Locals[name]; dup {
					m.add(a.SrcRange, "local %q is declared twice", name)
				}
				m.Locals[name] = a.SrcRange
				m.localExprs[name] = a.Expr
			}
		case "module":
			c := &Call{Name: b.Labels[0], Args: b.Body.Attributes, Block: b}
			if _, dup := m.Calls[c.Name]; dup {
				m.add(b.DefRange(), "module %q is declared twice", c.Name)
			}
			if a, ok := b.Body.Attributes["source"]; ok {
				c.Source, _ = literal(a.Expr)
			}
			m.Calls[c.Name] = c
		case "resource", "data":
			set := m.Resources
			if b.Type == "data" {
				set = m.Data
			}
			key := b.Labels[0] + "." + b.Labels[1]
			if _, dup := set[key]; dup {
				m.add(b.DefRange(), "%s %q is declared twice", b.Type, key)
			}
			set[key] = b.DefRange()
		case "terraform":
			for _, rp := range b.Body.Blocks {
				if rp.Type == "required_providers" {
					for name := range rp.Body.Attributes {
						m.Providers[name] = true
					}
				}
			}
		}
	}
}

func (m *Module) declareVariable(file string, b *hclsyntax.Block) {
	v := &Variable{Name: b.Labels[0], Pos: b.DefRange()}
	if m.Variable(v.Name) != nil {
		m.add(b.DefRange(), "variable %q is declared twice", v.Name)
	}
	if a, ok := b.Body.Attributes["type"]; ok {
		v.Type = m.text(file, a.Expr.Range())
	}
	if a, ok := b.Body.Attributes["description"]; ok {
		v.Description, v.HasDesc = literal(a.Expr)
	}
	if a, ok := b.Body.Attributes["default"]; ok {
		v.Default, v.HasDefault, v.defaultExpr = m.text(file, a.Expr.Range()), true, a.Expr
	}
	if a, ok := b.Body.Attributes["sensitive"]; ok {
		val, _ := a.Expr.Value(nil)
		v.Sensitive = val.IsKnown() && !val.IsNull() && val.True()
	}
	m.Variables = append(m.Variables, v)
}

// literal returns the value of a constant string expression.
func literal(e hclsyntax.Expression) (string, bool) {
	v, diags := e.Value(nil)
	if diags.HasErrors() || !v.IsKnown() || v.IsNull() || v.Type().FriendlyName() != "string" {
		return "", false
	}
	return v.AsString(), true
}

// Check loads dir and checks it and every local module it calls. It
// returns the problems found, sorted; none means the checks passed.
func Check(dir string) ([]Problem, error) {
	c := &checker{loaded: map[string]*Module{}}
	m, err := c.load(dir)
	if err != nil {
		return nil, err
	}
	c.check(m)
	return c.sorted(), nil
}

// CheckTree checks every directory under root that holds .tf files.
func CheckTree(root string) ([]Problem, error) {
	c := &checker{loaded: map[string]*Module{}}
	var dirs []string
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".terraform") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".tf") && !slices.Contains(dirs, filepath.Dir(path)) {
			dirs = append(dirs, filepath.Dir(path))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(dirs) == 0 {
		return nil, fmt.Errorf("%s: no .tf files", root)
	}
	for _, d := range dirs {
		m, err := c.load(d)
		if err != nil {
			return nil, err
		}
		c.check(m)
	}
	return c.sorted(), nil
}

type checker struct {
	loaded   map[string]*Module
	checked  []*Module
	problems []Problem
}

func (c *checker) load(dir string) (*Module, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if m, ok := c.loaded[abs]; ok {
		return m, nil
	}
	m, err := LoadModule(dir)
	if err != nil {
		return nil, err
	}
	c.loaded[abs] = m
	return m, nil
}

func (c *checker) sorted() []Problem {
	out := slices.Clone(c.problems)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Pos < out[j].Pos })
	return slices.CompactFunc(out, func(a, b Problem) bool { return a == b })
}

func (c *checker) check(m *Module) {
	if slices.Contains(c.checked, m) {
		return
	}
	c.checked = append(c.checked, m)
	c.problems = append(c.problems, m.problems...)
	add := func(r hcl.Range, format string, args ...any) {
		c.problems = append(c.problems, Problem{posOf(r), fmt.Sprintf(format, args...)})
	}
	for _, v := range m.Variables {
		if v.Type == "" {
			add(v.Pos, "variable %q has no type", v.Name)
		}
		if !v.HasDesc || strings.TrimSpace(v.Description) == "" {
			add(v.Pos, "variable %q has no description", v.Name)
		}
	}
	for _, o := range m.Outputs {
		if !o.HasDesc || strings.TrimSpace(o.Description) == "" {
			add(o.Pos, "output %q has no description", o.Name)
		}
	}
	callees := map[string]*Module{}
	for _, name := range sortedKeys(m.Calls) {
		call := m.Calls[name]
		if callee := c.checkCall(m, call); callee != nil {
			callees[name] = callee
		}
	}
	for _, file := range m.Files {
		body := m.bodies[file]
		if body == nil {
			continue
		}
		for _, b := range body.Blocks {
			c.checkBlock(m, callees, b)
		}
	}
}

// metaArgs are module block arguments that are not input variables.
var metaArgs = []string{"source", "version", "count", "for_each", "providers", "depends_on"}

func (c *checker) checkCall(m *Module, call *Call) *Module {
	b := call.Block
	add := func(r hcl.Range, format string, args ...any) {
		c.problems = append(c.problems, Problem{posOf(r), fmt.Sprintf(format, args...)})
	}
	for _, nb := range b.Body.Blocks {
		add(nb.TypeRange, "module %q: unexpected block %q (modules take arguments only)", call.Name, nb.Type)
	}
	if call.Source == "" {
		add(b.DefRange(), "module %q: source must be a string literal", call.Name)
		return nil
	}
	if !strings.HasPrefix(call.Source, "./") && !strings.HasPrefix(call.Source, "../") {
		return nil // a registry or git module: nothing local to check against
	}
	dir := filepath.Join(m.Dir, filepath.FromSlash(call.Source))
	callee, err := c.load(dir)
	if err != nil {
		add(call.Args["source"].SrcRange, "module %q: source %q: %v", call.Name, call.Source, err)
		return nil
	}
	c.check(callee)
	for _, name := range sortedKeys(call.Args) {
		if slices.Contains(metaArgs, name) {
			continue
		}
		if callee.Variable(name) == nil {
			add(call.Args[name].SrcRange, "module %q: %s declares no variable %q", call.Name, call.Source, name)
		}
	}
	for _, v := range callee.Variables {
		if _, ok := call.Args[v.Name]; !ok && v.Required() {
			add(b.DefRange(), "module %q: required variable %q of %s is not set", call.Name, v.Name, call.Source)
		}
	}
	return callee
}

// builtins are the reference roots Terraform itself defines.
var builtins = []string{"path", "terraform", "count", "each", "self"}

// checkBlock checks the references in a top-level block.
func (c *checker) checkBlock(m *Module, callees map[string]*Module, b *hclsyntax.Block) {
	switch b.Type {
	case "moved", "import", "removed", "terraform":
		return // addresses, not expressions
	}
	var walk func(body *hclsyntax.Body, bound []string, top bool)
	walk = func(body *hclsyntax.Body, bound []string, top bool) {
		for _, name := range sortedKeys(body.Attributes) {
			a := body.Attributes[name]
			switch {
			case top && b.Type == "variable" && name == "type":
				continue // a type constraint, not references
			case top && (name == "provider" || name == "providers"):
				continue // provider addresses
			}
			for _, t := range a.Expr.Variables() {
				c.checkRef(m, callees, t, bound)
			}
			c.checkFuncs(a.Expr)
		}
		for _, nb := range body.Blocks {
			switch nb.Type {
			case "lifecycle":
				if a, ok := nb.Body.Attributes["replace_triggered_by"]; ok {
					for _, t := range a.Expr.Variables() {
						c.checkRef(m, callees, t, bound)
					}
				}
				continue // ignore_changes names attributes, not references
			case "dynamic":
				iter := ""
				if len(nb.Labels) == 1 {
					iter = nb.Labels[0]
				}
				if a, ok := nb.Body.Attributes["iterator"]; ok {
					if t, diags := hcl.AbsTraversalForExpr(a.Expr); !diags.HasErrors() {
						iter = t.RootName()
					}
				}
				for _, name := range sortedKeys(nb.Body.Attributes) {
					if name == "iterator" {
						continue
					}
					for _, t := range nb.Body.Attributes[name].Expr.Variables() {
						c.checkRef(m, callees, t, bound)
					}
					c.checkFuncs(nb.Body.Attributes[name].Expr)
				}
				inner := append(slices.Clone(bound), iter)
				for _, cb := range nb.Body.Blocks {
					if cb.Type == "content" {
						walk(cb.Body, inner, false)
					}
				}
				continue
			}
			walk(nb.Body, bound, false)
		}
	}
	walk(b.Body, nil, true)
	c.checkMeta(b)
	if b.Type == "resource" || b.Type == "data" {
		prov, _, _ := strings.Cut(b.Labels[0], "_")
		if a, ok := b.Body.Attributes["provider"]; ok {
			if t, diags := hcl.AbsTraversalForExpr(a.Expr); !diags.HasErrors() {
				prov = t.RootName()
			}
		}
		if !m.Providers[prov] {
			c.problems = append(c.problems, Problem{posOf(b.DefRange()), fmt.Sprintf("%s %s.%s: provider %q is not in required_providers", b.Type, b.Labels[0], b.Labels[1], prov)})
		}
	}
	if b.Type == "provider" && !m.Providers[b.Labels[0]] {
		c.problems = append(c.problems, Problem{posOf(b.DefRange()), fmt.Sprintf("provider %q is not in required_providers", b.Labels[0])})
	}
}

// functions are Terraform's built-in functions (1.6 and later): a call to
// anything else fails at plan time, after the providers are downloaded.
var functions = strings.Fields(`abs abspath alltrue anytrue base64decode base64encode base64gzip
	base64sha256 base64sha512 basename bcrypt can ceil chomp chunklist cidrhost cidrnetmask
	cidrsubnet cidrsubnets coalesce coalescelist compact concat contains csvdecode dirname
	distinct element endswith file filebase64 filebase64sha256 filebase64sha512 fileexists
	filemd5 fileset filesha1 filesha256 filesha512 flatten floor format formatdate formatlist
	indent index join jsondecode jsonencode keys length log lookup lower matchkeys max md5
	merge min nonsensitive one parseint pathexpand plantimestamp pow range regex regexall
	replace reverse rsadecrypt sensitive setintersection setproduct setsubtract setunion sha1
	sha256 sha512 signum slice sort split startswith strcontains strrev substr sum
	templatefile textdecodebase64 textencodebase64 timeadd timecmp timestamp title tobool
	tolist tomap tonumber toset tostring transpose trim trimprefix trimspace trimsuffix try
	upper urlencode uuid uuidv5 values yamldecode yamlencode zipmap`)

// checkFuncs checks that every function an expression calls exists.
func (c *checker) checkFuncs(e hclsyntax.Expression) {
	hclsyntax.VisitAll(e, func(n hclsyntax.Node) hcl.Diagnostics {
		if f, ok := n.(*hclsyntax.FunctionCallExpr); ok && !slices.Contains(functions, f.Name) && !strings.HasPrefix(f.Name, "provider::") {
			c.problems = append(c.problems, Problem{posOf(f.NameRange), fmt.Sprintf("call to unknown function %s()", f.Name)})
		}
		return nil
	})
}

// checkMeta checks the references that depend on the block itself:
// count.index needs count, each.key needs for_each, and a variable's
// validation may only read that variable (Terraform before 1.9 refuses
// anything else, and the modules require only 1.6).
func (c *checker) checkMeta(b *hclsyntax.Block) {
	bad := func(t hcl.Traversal, format string, args ...any) {
		c.problems = append(c.problems, Problem{posOf(t.SourceRange()), fmt.Sprintf(format, args...)})
	}
	_, hasCount := b.Body.Attributes["count"]
	_, hasForEach := b.Body.Attributes["for_each"]
	var walk func(body *hclsyntax.Body, validation bool)
	walk = func(body *hclsyntax.Body, validation bool) {
		for _, name := range sortedKeys(body.Attributes) {
			for _, t := range body.Attributes[name].Expr.Variables() {
				switch root := t.RootName(); {
				case root == "count" && !hasCount:
					bad(t, "count.%s in a %s without count", first(attrNames(t)), b.Type)
				case root == "each" && !hasForEach:
					bad(t, "each.%s in a %s without for_each", first(attrNames(t)), b.Type)
				case validation && (root != "var" || first(attrNames(t)) != b.Labels[0]):
					bad(t, "the validation of variable %q may only refer to var.%s", b.Labels[0], b.Labels[0])
				}
			}
		}
		for _, nb := range body.Blocks {
			walk(nb.Body, validation || (b.Type == "variable" && nb.Type == "validation"))
		}
	}
	walk(b.Body, false)
}

// checkRef resolves one reference.
func (c *checker) checkRef(m *Module, callees map[string]*Module, t hcl.Traversal, bound []string) {
	root := t.RootName()
	bad := func(format string, args ...any) {
		c.problems = append(c.problems, Problem{posOf(t.SourceRange()), fmt.Sprintf(format, args...)})
	}
	attrs := attrNames(t)
	switch {
	case slices.Contains(bound, root), slices.Contains(builtins, root):
	case root == "var":
		if len(attrs) == 0 || m.Variable(attrs[0]) == nil {
			bad("reference to undeclared variable var.%s", first(attrs))
		}
	case root == "local":
		if _, ok := m.Locals[first(attrs)]; !ok {
			bad("reference to undeclared local.%s", first(attrs))
		}
	case root == "module":
		name := first(attrs)
		if _, ok := m.Calls[name]; !ok {
			bad("reference to undeclared module.%s", name)
			return
		}
		callee := callees[name]
		if callee == nil || len(attrs) < 2 {
			return // a remote module, or the whole module object
		}
		if callee.Output(attrs[1]) == nil {
			bad("module.%s.%s: %s has no output %q", name, attrs[1], m.Calls[name].Source, attrs[1])
		}
	case root == "data":
		if len(attrs) < 2 {
			bad("incomplete data reference")
			return
		}
		if _, ok := m.Data[attrs[0]+"."+attrs[1]]; !ok {
			bad("reference to undeclared data.%s.%s", attrs[0], attrs[1])
		}
	default:
		if len(attrs) == 0 {
			bad("unknown name %q", root)
			return
		}
		if _, ok := m.Resources[root+"."+attrs[0]]; !ok {
			bad("reference to undeclared resource %s.%s", root, attrs[0])
		}
	}
}

// attrNames lists the attribute steps of a traversal after its root,
// skipping index steps (module.x[0].y is x, y).
func attrNames(t hcl.Traversal) []string {
	var out []string
	for _, s := range t[1:] {
		if a, ok := s.(hcl.TraverseAttr); ok {
			out = append(out, a.Name)
		}
	}
	return out
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
