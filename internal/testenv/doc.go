// Package testenv is what tests share: the New* wrappers that start a real
// component (package components) for one test and stop it when the test
// ends, and Eventually, the one way a test waits for something that
// happens asynchronously. It imports package testing, so only tests (and
// test harnesses such as internal/stack) may import it; `bulkhead up` uses
// package components directly.
package testenv
