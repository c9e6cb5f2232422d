// Package xds turns the IR of a proxy into xDS resources, in two flavours:
// Envoy (router, gateway, sidecar) and proxyless gRPC (only what grpc-go
// accepts). One file per Envoy feature. It is the only package of the
// control plane that imports go-control-plane's protos.
package xds
