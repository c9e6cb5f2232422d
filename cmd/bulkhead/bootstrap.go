package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/bulkhead-mesh/bulkhead/envoy"
	"github.com/bulkhead-mesh/bulkhead/internal/grpcbootstrap"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

// bootstrapCmd prints the bootstrap of a proxy: grpc-go's JSON (role grpc,
// for GRPC_XDS_BOOTSTRAP) or Envoy's YAML (router, gateway, sidecar).
func bootstrapCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bulkhead bootstrap", flag.ContinueOnError)
	role := fs.String("role", "grpc", "grpc (a proxyless application), router, gateway or sidecar")
	name := fs.String("name", "", "the Service (grpc, sidecar) or Gateway (router, gateway) it is (required)")
	namespace := fs.String("namespace", "default", "namespace of that Service or Gateway")
	nodeID := fs.String("node-id", "", "unique id of this process (default: NAME-HOSTNAME-PID)")
	xdsAddr := fs.String("xds-address", "127.0.0.1:18000", "the control plane's ADS address (ip:port, or host:port resolved by DNS)")
	cpID := fs.String("control-plane-id", envoy.ControlPlaneID, "Envoy roles, production mode: the SPIFFE ID the control plane's certificate must carry (in a cluster, its ServiceAccount's)")
	adminPort := fs.Int("admin-port", 19000, "Envoy's admin port on 127.0.0.1 (Envoy roles)")
	zone := fs.String("zone", "", "locality zone of this process (grpc role)")
	inAddr := fs.String("inbound-address", "0.0.0.0", "sidecar: address its inbound listener binds")
	inPort := fs.Int("inbound-port", 0, "sidecar: port peers reach this instance on (0: outbound only)")
	appPort := fs.Int("app-port", 0, "sidecar: port the app listens on, on 127.0.0.1")
	certDir := fs.String("xds-cert-dir", "", "Envoy roles, production mode: directory with the node's cert.pem, key.pem and the trust bundle ca.pem; the xDS connection is then mTLS (reloaded when the files are replaced)")
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	if *name == "" {
		fmt.Fprintln(stderr, "bulkhead bootstrap: --name is required")
		return 2
	}
	if *nodeID == "" {
		host, _ := os.Hostname()
		*nodeID = fmt.Sprintf("%s-%s-%d", *name, host, os.Getpid())
	}
	var out []byte
	var err error
	if *role == "grpc" {
		out, err = grpcbootstrap.JSON(grpcbootstrap.Options{
			NodeID:     *nodeID,
			Proxy:      workload.ProxyID{Role: workload.RoleGRPC, Namespace: *namespace, Name: *name},
			XDSAddress: *xdsAddr,
			Zone:       *zone,
		})
	} else {
		b := envoy.Bootstrap{Role: *role, Name: *name, Namespace: *namespace, NodeID: *nodeID, XDSAddress: *xdsAddr, AdminPort: *adminPort, ControlPlaneID: *cpID}
		if *inPort != 0 || *appPort != 0 {
			b.InboundAddress, b.InboundPort, b.AppPort = *inAddr, *inPort, *appPort
		}
		if *certDir != "" {
			dir, err := filepath.Abs(*certDir)
			if err != nil {
				fmt.Fprintf(stderr, "bulkhead bootstrap: --xds-cert-dir: %v\n", err)
				return 2
			}
			b.XDSTLS = &envoy.TLSFiles{Dir: dir, Certificate: filepath.Join(dir, "cert.pem"), PrivateKey: filepath.Join(dir, "key.pem"), CA: filepath.Join(dir, "ca.pem")}
		}
		out, err = envoy.Render(b)
	}
	if err != nil {
		fmt.Fprintf(stderr, "bulkhead bootstrap: %v\n", err)
		return 2
	}
	stdout.Write(out)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		fmt.Fprintln(stdout)
	}
	return 0
}
