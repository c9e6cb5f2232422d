package workload

// Names a workload's bootstrap and the control plane's output agree on
// (envoy/README.md documents the node contract).
const (
	// MetadataKey is the key of the node metadata in which every proxy says
	// who it is:
	//
	//	"bulkhead": {"role": "grpc", "namespace": "default", "name": "chat"}
	//
	// or, flat, "bulkhead": "ROLE/NAMESPACE/NAME" (the rate-limit service,
	// whose node metadata holds strings only). A proxyless node may add
	// "serviceAccount" (see Account); a sidecar says which port it serves
	// for which app port:
	//
	//	"inbound": {"address": "10.0.0.5", "port": 9000, "appPort": 19000}
	MetadataKey = "bulkhead"

	// CertificateProvider is the certificate provider instance (grpc-go
	// bootstrap certificate_providers) from which a proxyless application
	// reads its workload certificate and the mesh's trust bundle; the
	// control plane's TLS contexts name it.
	CertificateProvider = "default"

	// ServerListenerTemplate is the name an xDS-enabled gRPC server asks
	// for, with %s replaced by its listening address (ip:port); the
	// bootstrap sets it as server_listener_resource_name_template.
	ServerListenerTemplate = "grpc/server?xds.resource.listening_address=%s"
)
