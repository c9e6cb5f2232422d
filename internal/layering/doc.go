// Package layering holds the test that keeps the module's layers apart
// (layering_test.go): which packages may link which, checked on the real
// import graph (`go list`) on every `make test`. It has no code of its own.
package layering
