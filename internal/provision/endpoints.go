package provision

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
)

// WriteEndpoint writes the EndpointSlice of one process of a Service into
// dir (the control plane's second config directory), atomically, and
// returns its path. Removing the file removes the endpoint.
func WriteEndpoint(dir, service, instance string, addr *net.TCPAddr) (string, error) {
	body := fmt.Sprintf(`# Written by bulkhead: process %[2]s of Service %[1]s.
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: %[2]s
  labels: {kubernetes.io/service-name: %[1]s}
addressType: IPv4
ports: [{name: grpc, port: %[3]d}]
endpoints: [{addresses: ["%[4]s"], conditions: {ready: true}}]
`, service, instance, addr.Port, addr.IP.String())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, instance+".yaml")
	tmp := filepath.Join(dir, "."+instance+".yaml.tmp")
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		return "", err
	}
	return path, os.Rename(tmp, path)
}
