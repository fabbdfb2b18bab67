package spec

import (
	"fmt"
	"reflect"
	"testing"

	"go.yaml.in/yaml/v3"
)

type scInner struct {
	Mode string `yaml:"mode" default:"basic"`
}
type scItem struct {
	Name string  `yaml:"name"`
	Auth scInner `yaml:"auth"`
	Off  string  `yaml:"off" default:"earliest"`
}
type scCfg struct {
	Items []scItem `yaml:"items"`
	Top   scInner  `yaml:"top"`
	Level string   `yaml:"level" default:"info"`
	Pw    []int    `yaml:"pw" secret:"true"`
}

func (c *scCfg) Validate() []Problem { return []Problem{{Message: "whole"}} }

func TestScratch(t *testing.T) {
	var zero yaml.Node
	fmt.Println(Check(FieldsOf(reflect.TypeFor[scCfg]()), &zero, "x"))
	var n yaml.Node
	yaml.Unmarshal([]byte("items:\n  - name: a\n    off:\n  - name: b\n    auth: {}\ntop: {}\nlevel:\n"), &n)
	v, ps := Decode[scCfg](&n, "cfg")
	fmt.Printf("%+v %v\n", v, ps)
	yaml.Unmarshal([]byte("items:\n  - name: a\n"), &n)
	v, ps = Decode[scCfg](&n, "cfg")
	fmt.Printf("%+v %v\n", v, ps)
	var d yaml.Node
	yaml.Unmarshal([]byte("a: 1\na: 2\n"), &d)
	fmt.Println(d.Content[0].Content[1].Value)
	var m map[string]int
	fmt.Println(d.Decode(&m), m)
	var s struct{ V string }
	yaml.Unmarshal([]byte("v: 1.0"), &s)
	fmt.Printf("%q\n", s.V)
	var tg yaml.Node
	yaml.Unmarshal([]byte("a: !!str 5\nb: \"x\"\nc: !!str \"x\"\n"), &tg)
	for _, c := range tg.Content[0].Content {
		fmt.Println(c.Value, c.Tag, c.Style, c.Line, c.Column)
	}
	_, err := ParseDuration("0")
	fmt.Println(err)
}
