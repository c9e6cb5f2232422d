package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/bulkhead-mesh/bulkhead/internal/modelsctl"
)

const modelsUsage = `usage: bulkhead models <list|get NAME|apply -f FILE...|delete NAME> [--state-dir DIR]

  list     every model of the registry, with the status of its Model object
  get      one Model object: where it was read, Accepted, Ready, its YAML
  apply    validate Model objects and write them to STATE/models (watched by
           the models service; applied without a restart), then report their
           status
  delete   remove a model applied with apply (the model is disabled)
`

func modelsCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, modelsUsage)
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("bulkhead models "+sub, flag.ContinueOnError)
	stateDir := fs.String("state-dir", ".bulkhead", "state directory of the running `bulkhead up`")
	xdsAddr := fs.String("xds-address", "", "the control plane's ADS address (default: from STATE/env)")
	var files []string
	wait := 15 * time.Second
	if sub == "apply" {
		fs.Func("f", "a file of Model objects (repeatable)", func(v string) error { files = append(files, v); return nil })
		fs.DurationVar(&wait, "wait", wait, "how long to wait for the models service's status (0: do not wait)")
	}
	rest := args[1:]
	target := ""
	if sub == "get" || sub == "delete" {
		// bulkhead models get NAME [flags]
		if len(rest) == 0 || rest[0] == "" || rest[0][0] == '-' {
			fmt.Fprintf(stderr, "bulkhead models %s: want a model name: bulkhead models %s NAME [flags]\n", sub, sub)
			return 2
		}
		target, rest = rest[0], rest[1:]
	}
	if code, ok := parseFlags(fs, rest, stderr); !ok {
		return code
	}
	c := modelsctl.Client{StateDir: *stateDir, XDSAddress: *xdsAddr}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, wait+15*time.Second)
	defer cancel()
	var err error
	switch sub {
	case "list":
		err = c.List(ctx, stdout)
	case "get":
		err = c.Get(ctx, stdout, target)
	case "apply":
		err = c.Apply(ctx, stdout, files, wait)
	case "delete":
		err = c.Delete(stdout, target)
	default:
		fmt.Fprintf(stderr, "bulkhead models: unknown command %q\n\n%s", sub, modelsUsage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "bulkhead models %s: %v\n", sub, err)
		return 1
	}
	return 0
}
