module example.com/rivven-counter

go 1.26.8

require github.com/rivven/rivven-connect v0.0.0-00010101000000-000000000000

require (
	github.com/aws/aws-lambda-go v1.55.1 // indirect
	go.yaml.in/yaml/v3 v3.0.6 // indirect
)

// The SDK comes from this repository's checkout; a module published on
// its own requires a released version of rivven-connect instead.
replace github.com/rivven/rivven-connect => ../..
