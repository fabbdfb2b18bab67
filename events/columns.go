package events

import (
	"fmt"
	"strings"
)

// Column describes one column of the table a change came from, as its
// database names the type: PostgreSQL's format_type ("numeric(10,2)",
// "timestamp(3) without time zone"), MySQL's COLUMN_TYPE ("decimal(10,2)",
// "datetime(6)", "int unsigned").
type Column struct {
	Name    string
	Type    string
	NotNull bool
}

// notNullSuffix marks a NOT NULL column in the rendered form.
const notNullSuffix = " not null"

// AppendColumns renders columns the way SourceInfo.Columns carries them:
// a JSON object in table order from column name to the type, with
// " not null" appended for NOT NULL columns, as SQL would declare them
// ({"id":"integer not null","email":"character varying(255)"}). A CDC
// source renders it once per table and shares the bytes among the
// table's events.
func AppendColumns(dst []byte, cols []Column) []byte {
	dst = append(dst, '{')
	for i, c := range cols {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendJSONString(dst, c.Name)
		dst = append(dst, ':')
		t := c.Type
		if c.NotNull {
			t += notNullSuffix
		}
		dst = AppendJSONString(dst, t)
	}
	return append(dst, '}')
}

// ParseColumns reads what AppendColumns wrote.
func ParseColumns(raw string) ([]Column, error) {
	var cols []Column
	err := objectFields([]byte(raw), func(k, v []byte) error {
		name, err := unquote(k)
		if err != nil {
			return err
		}
		t, err := unquote(v)
		if err != nil {
			return fmt.Errorf("column %s: type is not a string", name)
		}
		c := Column{Name: name, Type: t}
		if strings.HasSuffix(t, notNullSuffix) {
			c.Type, c.NotNull = strings.TrimSuffix(t, notNullSuffix), true
		}
		cols = append(cols, c)
		return nil
	})
	return cols, err
}
