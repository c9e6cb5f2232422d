package main

import (
	"flag"
	"fmt"
	"io"

	controlplane "github.com/bulkhead-mesh/bulkhead/control-plane"
	"github.com/bulkhead-mesh/bulkhead/control-plane/xds"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

func translateCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bulkhead translate", flag.ContinueOnError)
	dir := fs.String("f", "", "directory of resources (required)")
	node := fs.String("node", "grpc/default/client", "proxy whose configuration to print: ROLE/NAME or ROLE/NAMESPACE/NAME")
	output := fs.String("o", "yaml", "output format: yaml, json, or bootstrap (an Envoy bootstrap with the listeners and clusters as static resources, for envoy --mode validate)")
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	if *dir == "" {
		fmt.Fprintln(stderr, "bulkhead translate: -f DIR is required")
		return 2
	}
	if *output != "yaml" && *output != "json" && *output != "bootstrap" {
		fmt.Fprintf(stderr, "bulkhead translate: -o %q: want yaml, json or bootstrap\n", *output)
		return 2
	}
	id, err := workload.ParseProxyID(*node)
	if err != nil {
		fmt.Fprintf(stderr, "bulkhead translate: --node: %v\n", err)
		return 2
	}
	r := controlplane.Offline(*dir)
	// Problems do not stop translation (the control plane applies the
	// rest); they are shown so nobody mistakes the output for the whole.
	for _, e := range r.Errors {
		fmt.Fprintf(stderr, "warning: %v\n", e)
	}
	res, warnings, err := xds.BuildWithWarnings(r.Config(id))
	for _, w := range warnings {
		fmt.Fprintf(stderr, "warning: %v\n", w)
	}
	if err != nil {
		fmt.Fprintf(stderr, "bulkhead translate: %v\n", err)
		return 1
	}
	var out []byte
	switch *output {
	case "json":
		out, err = res.JSON()
	case "bootstrap":
		out, err = res.StaticBootstrap(id.String(), "127.0.0.1", 18000)
	default:
		out, err = res.YAML()
	}
	if err != nil {
		fmt.Fprintf(stderr, "bulkhead translate: %v\n", err)
		return 1
	}
	stdout.Write(out)
	return 0
}
