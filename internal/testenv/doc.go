// Package testenv starts throwaway, real servers: PostgreSQL, Redis, Vault,
// kube-apiserver with etcd, and a Kafka broker in process. Tests use the New*
// helpers, which stop the server with t.Cleanup; the local runner (bulkhead
// up) uses the Start* functions and Close.
//
// Every server listens on loopback on a free port, keeps its state in its own
// directory and runs as a child process of the caller that dies with it, so
// test packages running in parallel never share one. When a binary is
// missing, the error names the make target that provides it.
package testenv
