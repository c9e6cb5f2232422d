package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/bulkhead-mesh/bulkhead/internal/localrun"
)

func up(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bulkhead up", flag.ContinueOnError)
	stateDir := fs.String("state-dir", ".bulkhead", "directory for all local state (databases, logs, credentials)")
	meshDir := fs.String("mesh-dir", "policies/mesh", "the control plane's input: Services, routes and policies")
	xdsAddr := fs.String("xds-address", "127.0.0.1:18000", "address of the control plane's ADS server")
	adminAddr := fs.String("admin-address", "127.0.0.1:18001", "address of the control plane's admin endpoint")
	apiAddr := fs.String("api-address", "127.0.0.1:8080", "address of the public API")
	binDir := fs.String("bin-dir", "", "directory of the service binaries bulkhead-NAME (default: this executable's directory)")
	modelsDir := fs.String("models-dir", "policies/models", "the platform's Model objects, watched (beside STATE/models)")
	var upstreams []localrun.Upstream
	fs.Func("upstream", "serve model NAME from an OpenAI-compatible server: NAME=URL, e.g. llama3.2=http://127.0.0.1:11434/v1 (repeatable)", func(v string) error {
		u, err := localrun.ParseUpstream(v)
		if err != nil {
			return err
		}
		upstreams = append(upstreams, u)
		return nil
	})
	var webhookNetworks []string
	fs.Func("webhooks-allow-network", "CIDR webhook deliveries may reach although loopback, link-local or private, e.g. 127.0.0.1/32 for a receiver on this machine (repeatable)", func(v string) error {
		webhookNetworks = append(webhookNetworks, v)
		return nil
	})
	pprof := fs.Bool("pprof", false, "every service also serves its Go profiles (/debug/pprof/) on its metrics address")
	tokenInterval := fs.Duration("token-interval", 15*time.Millisecond, "builtin engine: time per generated piece, so that streaming is visible (0: as fast as the CPU goes)")
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := localrun.Run(ctx, localrun.Options{
		StateDir: *stateDir, Out: stdout, MeshDir: *meshDir, XDSAddress: *xdsAddr, AdminAddress: *adminAddr,
		APIAddress: *apiAddr, BinDir: *binDir, TokenInterval: *tokenInterval, ModelsDir: *modelsDir, Upstreams: upstreams,
		WebhooksAllowNetworks: webhookNetworks, Pprof: *pprof,
	}); err != nil {
		fmt.Fprintf(stderr, "bulkhead up: %v\n", err)
		return 1
	}
	return 0
}
