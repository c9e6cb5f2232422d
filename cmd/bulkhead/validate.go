package main

import (
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	controlplane "github.com/bulkhead-mesh/bulkhead/control-plane"
	"github.com/bulkhead-mesh/bulkhead/control-plane/xds"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

func validateCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bulkhead validate", flag.ContinueOnError)
	dir := fs.String("f", "", "directory of resources (required)")
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	if *dir == "" {
		fmt.Fprintln(stderr, "bulkhead validate: -f DIR is required")
		return 2
	}
	r := controlplane.Offline(*dir)
	problems := len(r.Errors)
	for _, e := range r.Errors {
		fmt.Fprintln(stdout, e)
	}
	// What translates must also build into valid xDS: for proxyless
	// clients and for the Envoy of every Gateway.
	proxies := []workload.ProxyID{{Role: workload.RoleGRPC, Namespace: "default", Name: "validate"}}
	for _, key := range slices.Sorted(maps.Keys(r.GatewayListeners)) {
		ns, name, _ := strings.Cut(key, "/")
		proxies = append(proxies, workload.ProxyID{Role: workload.RoleGateway, Namespace: ns, Name: name})
	}
	for _, id := range proxies {
		_, warnings, err := xds.BuildWithWarnings(r.Config(id))
		for _, w := range warnings {
			fmt.Fprintf(stdout, "xDS for %s: %v\n", id, w)
			problems++
		}
		if err != nil {
			fmt.Fprintf(stdout, "xDS for %s: %v\n", id, err)
			problems++
		}
	}
	if problems > 0 {
		fmt.Fprintf(stderr, "%d problem(s) in %s\n", problems, *dir)
		return 1
	}
	fmt.Fprintf(stdout, "%s: valid (%d objects with status, %d clusters, %d listeners)\n", *dir, len(r.Status.Objects()), len(r.Clusters), len(r.ClientListeners))
	return 0
}
