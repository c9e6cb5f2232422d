// Package e2e holds the end-to-end tests of the chat-completion flow: every
// service in process on the proxyless mesh programmed by the control plane
// from policies/, with real PostgreSQL, Redis and Vault, driven through the
// public HTTP API.
package e2e
