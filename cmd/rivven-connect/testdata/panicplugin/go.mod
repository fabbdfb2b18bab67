module example.com/rivven-panicker

go 1.26.8

require github.com/rivven/rivven-connect v0.0.0-00010101000000-000000000000

replace github.com/rivven/rivven-connect => ../../../..
