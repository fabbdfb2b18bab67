package rdbc

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// pgTypes is a table with every common type, and rows at their edges.
const pgTypes = `CREATE TABLE $T_src (
	id integer PRIMARY KEY,
	c_small smallint, c_int integer, c_big bigint,
	c_num numeric(20,6), c_real real, c_dbl double precision,
	c_bool boolean, c_text text, c_vc varchar(50), c_char char(5),
	c_date date, c_ts timestamp(6), c_tstz timestamptz, c_time time(6),
	c_bytes bytea, c_json jsonb, c_uuid uuid)`

var pgRows = []string{
	`INSERT INTO $T_src VALUES (1, 32767, 2147483647, 9223372036854775807, 99999999999999.999999, 3.14159, 2.718281828459045,
		true, 'plain', 'varchar', 'abc', '2024-02-29', '2024-02-29 23:59:59.123456', '2024-02-29 23:59:59.654321+02', '23:59:59.999999',
		'\x00ff10', '{"a": [1, 2.5, "x"], "b": {"c": null}}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11')`,
	`INSERT INTO $T_src VALUES (2, -32768, -2147483648, -9223372036854775808, -0.000001, -1.5e-10, 1e300,
		false, E'quote '' dq " backslash \\ tab \t newline \n ünï €', '', '     ', '0001-01-01', '1970-01-01 00:00:00', '2038-01-19 03:14:08Z', '00:00:00',
		'', '[]', '00000000-0000-0000-0000-000000000000')`,
	`INSERT INTO $T_src (id) VALUES (3)`,
}

// TestCopyPostgresToMariaDBAndBack copies a table with every common type
// from PostgreSQL to MariaDB (the sink creating the table) and back into a
// copy of the original, and compares the rows exactly: the PostgreSQL
// copies with EXCEPT both ways, the MariaDB table value by value.
func TestCopyPostgresToMariaDBAndBack(t *testing.T) {
	h := newDBs(t, true)
	ctx := context.Background()
	h.exec(h.pg, pgTypes)
	h.exec(h.pg, pgRows...)
	h.exec(h.pg, `CREATE TABLE $T_back (LIKE $T_src INCLUDING ALL)`)

	// PostgreSQL -> MariaDB.
	toMy := h.sink("url: " + myURL + "\ntable: $T_mid\nauto_create: true\n")
	src := h.source("url: " + pgURL + "\ntables: [$T_src]\npoll_interval_ms: 0\n")
	if err := src.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if err := toMy.Check(ctx); err != nil {
		t.Fatal(err)
	}
	c := &collector{t: t, sink: toMy}
	if err := src.Read(ctx, nil, c); err != nil {
		t.Fatal(err)
	}
	if evs, _ := c.take(); len(evs) != 3 {
		t.Fatalf("read %d rows, want 3", len(evs))
	}

	// The table MariaDB got, and its values.
	got := h.rows(h.my, `SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '`+myDB+`' AND TABLE_NAME = '$T_mid' ORDER BY ORDINAL_POSITION`)
	wantCols := []string{"id|int(11)", "c_small|smallint(6)", "c_int|int(11)", "c_big|bigint(20)", "c_num|decimal(20,6)", "c_real|float", "c_dbl|double",
		"c_bool|tinyint(1)", "c_text|longtext", "c_vc|varchar(50)", "c_char|char(5)", "c_date|date", "c_ts|datetime(6)", "c_tstz|datetime(6)",
		"c_time|time(6)", "c_bytes|longblob", "c_json|longtext", "c_uuid|uuid"}
	if !slices.Equal(got, wantCols) {
		t.Errorf("MariaDB columns:\n got %q\nwant %q", got, wantCols)
	}
	got = h.rows(h.my, `SELECT id, c_small, c_int, c_big, c_num, c_real, c_dbl, c_bool, c_text, c_vc, c_char, c_date, c_ts, c_tstz, c_time, HEX(c_bytes), c_json, c_uuid FROM $T_mid ORDER BY id`)
	want := []string{
		`1|32767|2147483647|9223372036854775807|99999999999999.999999|3.14159|2.718281828459045|1|plain|varchar|abc|2024-02-29|2024-02-29 23:59:59.123456|2024-02-29 21:59:59.654321|23:59:59.999999|00FF10|{"a":[1,2.5,"x"],"b":{"c":null}}|a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11`,
		"2|-32768|-2147483648|-9223372036854775808|-0.000001|-1.5e-10|1e+300|0|quote ' dq \" backslash \\ tab \t newline \n ünï €|||0001-01-01|1970-01-01 00:00:00.000000|2038-01-19 03:14:08.000000|00:00:00.000000||[]|00000000-0000-0000-0000-000000000000",
		"3|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL",
	}
	// MariaDB writes JSON compact, 1e300 as 1e+300, and returns CHAR
	// without its padding.
	if !slices.Equal(got, want) {
		t.Errorf("MariaDB rows:\n got %q\nwant %q", got, want)
	}

	// MariaDB -> PostgreSQL, into a copy of the original table.
	toPG := h.sink("url: " + pgURL + "\ntable: $T_back\n")
	back := h.source("url: " + myURL + "\ntables: [$T_mid]\npoll_interval_ms: 0\n")
	c = &collector{t: t, sink: toPG}
	if err := back.Read(ctx, nil, c); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`SELECT * FROM $T_src EXCEPT SELECT * FROM $T_back`,
		`SELECT * FROM $T_back EXCEPT SELECT * FROM $T_src`,
	} {
		if diff := h.rows(h.pg, q); len(diff) > 0 {
			t.Errorf("%s:\n%s", q, strings.Join(diff, "\n"))
		}
	}
	if n := h.rows(h.pg, `SELECT count(*) FROM $T_back`); n[0] != "3" {
		t.Errorf("back has %s rows, want 3", n[0])
	}
}
