// Package components starts the platform's real components as throwaway
// child processes: PostgreSQL, Redis, Vault, kube-apiserver with etcd, the
// rate-limit service (envoyproxy/ratelimit), and a Kafka broker in process.
// `bulkhead up` runs them with the Start* functions and Close; tests use
// the New* wrappers of package testenv, which stop them when the test ends.
//
// Every server listens on loopback on a free port, keeps its state in its own
// directory and runs as a child process of the caller that dies with it, so
// test packages running in parallel never share one. When a binary is
// missing, the error names the make target that provides it.
package components
