// Package envoy holds the Envoy bootstrap templates of the router, the
// gateways and the sidecars (see README.md for the node contract), and
// renders them.
package envoy

import (
	"bytes"
	"embed"
	"fmt"
	"net"
	"text/template"
)

//go:embed *.yaml.tmpl
var templates embed.FS

var tmpl = template.Must(template.New("envoy").Option("missingkey=error").ParseFS(templates, "*.yaml.tmpl"))

// Bootstrap describes one Envoy process.
type Bootstrap struct {
	// Role is router, gateway or sidecar.
	Role string
	// Name of the gateway (router, gateway) or of the service (sidecar).
	Name      string
	Namespace string
	// NodeID is unique per process.
	NodeID string
	// XDSAddress is the control plane's ADS address: ip:port, or
	// host:port (a cluster's Service name, resolved by DNS).
	XDSAddress string
	// ControlPlaneID is the SPIFFE ID the control plane's certificate must
	// carry (default ControlPlaneID, universal mode's).
	ControlPlaneID string
	// AdminPort of Envoy's admin interface, on 127.0.0.1.
	AdminPort int
	// InboundAddress:InboundPort is where a sidecar serves its app, which
	// listens on 127.0.0.1:AppPort (sidecar only; 0: outbound only).
	InboundAddress string
	InboundPort    int
	AppPort        int
	// XDSTLS makes the xDS connection mTLS (the control plane in production
	// mode): the node's workload certificate, whose SPIFFE ID proves the
	// identity it claims, and the bundle that verifies the control plane.
	// Envoy reloads the files when Dir's content is replaced (renewal).
	XDSTLS *TLSFiles
}

// TLSFiles are PEM files in one directory.
type TLSFiles struct{ Dir, Certificate, PrivateKey, CA string }

// ControlPlaneID is the SPIFFE ID the control plane's certificate must
// carry for an Envoy to accept it, in universal mode (`bulkhead up`).
const ControlPlaneID = "spiffe://bulkhead.local/ns/default/sa/control-plane"

// Render returns the bootstrap YAML.
func Render(b Bootstrap) ([]byte, error) {
	switch b.Role {
	case "router", "gateway", "sidecar":
	default:
		return nil, fmt.Errorf("envoy bootstrap: role %q: want router, gateway or sidecar", b.Role)
	}
	if b.Name == "" || b.NodeID == "" {
		return nil, fmt.Errorf("envoy bootstrap: name and node id are required")
	}
	if b.Namespace == "" {
		b.Namespace = "default"
	}
	host, port, err := net.SplitHostPort(b.XDSAddress)
	if err != nil || host == "" || port == "" {
		return nil, fmt.Errorf("envoy bootstrap: xds address %q: want ip:port or host:port", b.XDSAddress)
	}
	// An IP is a static endpoint; a name is resolved (and re-resolved) by DNS.
	xdsType := "STATIC"
	if net.ParseIP(host) == nil {
		xdsType = "STRICT_DNS"
	}
	if b.ControlPlaneID == "" {
		b.ControlPlaneID = ControlPlaneID
	}
	if b.AdminPort <= 0 || b.AdminPort > 65535 {
		return nil, fmt.Errorf("envoy bootstrap: admin port %d: want 1-65535", b.AdminPort)
	}
	if b.InboundPort != 0 || b.AppPort != 0 {
		if b.Role != "sidecar" {
			return nil, fmt.Errorf("envoy bootstrap: only a sidecar has an inbound port")
		}
		if b.InboundAddress == "" {
			b.InboundAddress = "0.0.0.0"
		}
		if net.ParseIP(b.InboundAddress) == nil || b.InboundPort <= 0 || b.InboundPort > 65535 || b.AppPort <= 0 || b.AppPort > 65535 {
			return nil, fmt.Errorf("envoy bootstrap: inbound %s:%d for app port %d: want an IP and ports 1-65535", b.InboundAddress, b.InboundPort, b.AppPort)
		}
	}
	if t := b.XDSTLS; t != nil && (t.Dir == "" || t.Certificate == "" || t.PrivateKey == "" || t.CA == "") {
		return nil, fmt.Errorf("envoy bootstrap: xds tls: directory, certificate, private key and CA files are all required")
	}
	var out bytes.Buffer
	err = tmpl.ExecuteTemplate(&out, b.Role+".yaml.tmpl", struct {
		Bootstrap
		XDSHost string
		XDSPort string
		XDSType string
	}{b, host, port, xdsType})
	if err != nil {
		return nil, fmt.Errorf("envoy bootstrap: %w", err)
	}
	return out.Bytes(), nil
}
