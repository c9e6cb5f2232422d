// Package grpcbootstrap generates the bootstrap of a proxyless gRPC application:
// where the control plane is and who the application is (node metadata, see
// envoy/README.md). grpc-go reads it from the file named by
// GRPC_XDS_BOOTSTRAP, or, in tests, from xds.NewXDSResolverWithConfigForTesting
// and xds.BootstrapContentsForTesting.
package grpcbootstrap

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

// Options describes one proxyless application.
type Options struct {
	// NodeID is unique per process (e.g. "chat-7d9f/10.0.0.12").
	NodeID string
	// Proxy is the identity that selects its configuration (role grpc).
	Proxy workload.ProxyID
	// XDSAddress is host:port of the control plane's ADS endpoint.
	XDSAddress string
	// Locality of the process, for locality-aware load balancing.
	Zone string
	// ServiceAccount is the identity the process proves on an mTLS xDS
	// connection, when it is not its Service's name (auth's cache-only
	// pool, Service auth-cache, runs as auth).
	ServiceAccount string
	// Certificates, when set, are the workload certificate files of the
	// process: grpc-go's file_watcher certificate provider (instance
	// workload.CertificateProvider) re-reads them, so the process can rotate them
	// in place; the control plane's TLS contexts refer to that instance.
	Certificates *CertificateFiles
	// XDSTLS makes the connection to the control plane mTLS with the same
	// certificates (production mode: the node proves who it is). The
	// control plane's certificate must name the host of XDSAddress.
	XDSTLS bool
}

// CertificateFiles are PEM files: the certificate chain, its key, and the
// trust bundle (the mesh's root CA).
type CertificateFiles struct {
	Certificate, PrivateKey, CA string
	// RefreshInterval is how often they are re-read (default 10s).
	RefreshInterval time.Duration
}

// JSON returns the bootstrap.
func JSON(o Options) ([]byte, error) {
	if o.NodeID == "" {
		return nil, errors.New("bootstrap: node id is required")
	}
	if o.Proxy.Role != workload.RoleGRPC {
		return nil, fmt.Errorf("bootstrap: proxy %s: a proxyless application has role grpc", o.Proxy)
	}
	if _, _, err := net.SplitHostPort(o.XDSAddress); err != nil {
		return nil, fmt.Errorf("bootstrap: xds address %q: %w", o.XDSAddress, err)
	}
	type creds struct {
		Type   string         `json:"type"`
		Config map[string]any `json:"config,omitempty"`
	}
	type xdsServer struct {
		ServerURI      string   `json:"server_uri"`
		ChannelCreds   []creds  `json:"channel_creds"`
		ServerFeatures []string `json:"server_features"`
	}
	type locality struct {
		Zone string `json:"zone,omitempty"`
	}
	type node struct {
		ID       string         `json:"id"`
		Locality *locality      `json:"locality,omitempty"`
		Metadata map[string]any `json:"metadata"`
	}
	type provider struct {
		PluginName string         `json:"plugin_name"`
		Config     map[string]any `json:"config"`
	}
	doc := struct {
		XDSServers                         []xdsServer         `json:"xds_servers"`
		Node                               node                `json:"node"`
		ServerListenerResourceNameTemplate string              `json:"server_listener_resource_name_template"`
		CertificateProviders               map[string]provider `json:"certificate_providers,omitempty"`
	}{
		XDSServers: []xdsServer{{
			ServerURI: o.XDSAddress,
			// Plaintext to the control plane unless XDSTLS (below).
			ChannelCreds:   []creds{{Type: "insecure"}},
			ServerFeatures: []string{"xds_v3"},
		}},
		Node: node{
			ID:       o.NodeID,
			Metadata: map[string]any{workload.MetadataKey: bulkheadMetadata(o)},
		},
		ServerListenerResourceNameTemplate: workload.ServerListenerTemplate,
	}
	if o.Zone != "" {
		doc.Node.Locality = &locality{Zone: o.Zone}
	}
	if o.XDSTLS {
		c := o.Certificates
		if c == nil {
			return nil, errors.New("bootstrap: an mTLS xDS connection needs the certificates")
		}
		doc.XDSServers[0].ChannelCreds = []creds{{Type: "tls", Config: map[string]any{
			"certificate_file":    c.Certificate,
			"private_key_file":    c.PrivateKey,
			"ca_certificate_file": c.CA,
			"refresh_interval":    durationJSON(c.RefreshInterval),
		}}}
	}
	if c := o.Certificates; c != nil {
		if c.Certificate == "" || c.PrivateKey == "" || c.CA == "" {
			return nil, errors.New("bootstrap: certificates need the certificate, private key and CA files")
		}
		if filepath.Dir(c.Certificate) != filepath.Dir(c.PrivateKey) {
			return nil, errors.New("bootstrap: the certificate and its key must be in the same directory (grpc-go's file_watcher)")
		}

		doc.CertificateProviders = map[string]provider{workload.CertificateProvider: {
			PluginName: "file_watcher",
			Config: map[string]any{
				"certificate_file":    c.Certificate,
				"private_key_file":    c.PrivateKey,
				"ca_certificate_file": c.CA,
				"refresh_interval":    durationJSON(c.RefreshInterval),
			},
		}}
	}
	return json.MarshalIndent(doc, "", "  ")
}

// durationJSON is a refresh interval as a google.protobuf.Duration in JSON
// (seconds with an "s"; default 10s).
func durationJSON(d time.Duration) string {
	if d <= 0 {
		d = 10 * time.Second
	}
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
}

func bulkheadMetadata(o Options) map[string]string {
	md := map[string]string{
		"role":      string(o.Proxy.Role),
		"namespace": o.Proxy.Namespace,
		"name":      o.Proxy.Name,
	}
	if o.ServiceAccount != "" && o.ServiceAccount != o.Proxy.Name {
		md["serviceAccount"] = o.ServiceAccount
	}
	return md
}
