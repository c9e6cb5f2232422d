package provision

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// WriteEndpoint writes the EndpointSlice of one process of a Service into
// dir (the control plane's second config directory), atomically, and
// returns its path. Removing the file removes the endpoint. The process
// serves port "grpc" at addr (unless its port is 0), and the named extra
// ports on the same host.
func WriteEndpoint(dir, service, instance string, addr *net.TCPAddr, extra map[string]int) (string, error) {
	var list []string
	if addr.Port > 0 {
		list = append(list, fmt.Sprintf("{name: grpc, port: %d}", addr.Port))
	}
	names := make([]string, 0, len(extra))
	for n, port := range extra {
		if port > 0 {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		list = append(list, fmt.Sprintf("{name: %s, port: %d}", n, extra[n]))
	}
	if len(list) == 0 {
		return "", fmt.Errorf("endpoint %s of Service %s: no port", instance, service)
	}
	ports := strings.Join(list, ", ")
	body := fmt.Sprintf(`# Written by bulkhead: process %[2]s of Service %[1]s.
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: %[2]s
  labels: {kubernetes.io/service-name: %[1]s}
addressType: IPv4
ports: [%[3]s]
endpoints: [{addresses: ["%[4]s"], conditions: {ready: true}}]
`, service, instance, ports, addr.IP.String())
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
