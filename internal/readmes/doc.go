// Package readmes holds the test that keeps the repository's Markdown
// honest (readmes_test.go): every relative link resolves inside the
// repository. It has no code of its own.
package readmes
