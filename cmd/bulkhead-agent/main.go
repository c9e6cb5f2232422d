// Command bulkhead-agent is the platform's own part inside its Kubernetes
// cluster (internal/incluster): the bootstrap Job, the unsealer beside
// Vault, the wait for a Vault role in the services' init containers, the
// certificate agent beside programs that cannot read Vault, and a
// development cluster's dev-key Job. A small binary of its own: it links
// none of the CLI's local runner.
//
//	bulkhead-agent bootstrap|unseal|wait-vault|cert-agent|dev-key [flags]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/bulkhead-mesh/bulkhead/internal/incluster"
	"github.com/bulkhead-mesh/bulkhead/internal/pki"
	"github.com/bulkhead-mesh/bulkhead/internal/provision"
)

const usage = `usage: bulkhead-agent <command> [flags]   (inside a pod of the platform's cluster)

commands:
  bootstrap   the bootstrap Job: stores' passwords, Vault TLS, init and unseal, provisioning
  unseal      beside Vault: unseal it whenever it starts sealed
  wait-vault  an init container: return once this pod's Vault role exists
  cert-agent  beside a program that cannot read Vault: keep its workload certificate in files
  dev-key     a development cluster's Job: the development account and key, kept in Secret dev-api-key
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	fs := flag.NewFlagSet("bulkhead-agent "+args[0], flag.ContinueOnError)
	namespace := fs.String("namespace", os.Getenv("POD_NAMESPACE"), "the platform's namespace (default $POD_NAMESPACE)")
	vaultAddr := fs.String("vault-address", os.Getenv("VAULT_ADDR"), "Vault (default $VAULT_ADDR)")
	role := fs.String("vault-kubernetes-role", "", "the Vault role this pod's service account logs in as")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	var do func(ctx context.Context, log *slog.Logger) error
	switch args[0] {
	case "bootstrap":
		var o incluster.BootstrapOptions
		fs.StringVar(&o.ControlPlaneNamespace, "control-plane-namespace", "", "namespace of the control plane (default: --namespace)")
		fs.StringVar(&o.ControlPlaneServiceAccount, "control-plane-service-account", "bulkhead-control-plane", "the control plane's service account")
		fs.StringVar(&o.ControlPlaneService, "control-plane-service", "control-plane", "the control plane's Service (its serving certificate carries the names)")
		fs.StringVar(&o.ClusterDomain, "cluster-domain", "cluster.local", "the cluster's DNS domain")
		timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
		do = func(ctx context.Context, log *slog.Logger) error {
			cs, err := incluster.Client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(ctx, *timeout)
			defer cancel()
			o.Namespace, o.Log = *namespace, log
			return incluster.Bootstrap(ctx, cs, o)
		}
	case "unseal":
		caFile := fs.String("vault-ca", os.Getenv("VAULT_CACERT"), "CA of Vault's serving certificate (default $VAULT_CACERT)")
		every := fs.Duration("every", 5*time.Second, "how often Vault's seal status is read")
		do = func(ctx context.Context, log *slog.Logger) error {
			cs, err := incluster.Client()
			if err != nil {
				return err
			}
			return incluster.KeepUnsealed(ctx, log, cs, *namespace, *vaultAddr, *caFile, *every)
		}
	case "wait-vault":
		timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
		do = func(ctx context.Context, log *slog.Logger) error {
			ctx, cancel := context.WithTimeout(ctx, *timeout)
			defer cancel()
			return incluster.WaitForRole(ctx, log, pki.VaultConfig{Address: *vaultAddr, KubernetesRole: *role})
		}
	case "cert-agent":
		var o incluster.CertAgentOptions
		fs.StringVar(&o.Identity, "identity", "", "the service account the certificate is for (required)")
		fs.StringVar(&o.Role, "pki-role", "", "the PKI role that issues it (default --identity)")
		fs.StringVar(&o.Dir, "dir", "", "where cert.pem, key.pem and ca.pem are kept (required)")
		fs.StringVar(&o.ReadyAddress, "ready-address", "", "serve GET /ready (200 once the first certificate is written)")
		sans := fs.String("sans", "", "comma-separated IP addresses or DNS names the certificate also carries")
		do = func(ctx context.Context, log *slog.Logger) error {
			o.Vault = pki.VaultConfig{Address: *vaultAddr, KubernetesRole: *role}
			if o.Vault.KubernetesRole == "" {
				o.Vault.KubernetesRole = o.Identity
			}
			o.Namespace, o.Log = *namespace, log
			if *sans != "" {
				o.SANs = strings.Split(*sans, ",")
			}
			return incluster.CertAgent(ctx, o)
		}
	case "dev-key":
		xdsAddr := fs.String("xds-address", "", "the control plane's ADS endpoint (required)")
		certDir := fs.String("cert-dir", "", "the operator's workload certificate (a cert agent keeps it; required)")
		timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
		do = func(ctx context.Context, log *slog.Logger) error {
			if *xdsAddr == "" || *certDir == "" {
				return fmt.Errorf("--xds-address and --cert-dir are required")
			}
			cs, err := incluster.Client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(ctx, *timeout)
			defer cancel()
			host, _ := os.Hostname()
			op := provision.Operator(*xdsAddr, "dev-key-"+host, pki.CertFilesIn(*certDir), true)
			op.Namespace = *namespace
			return incluster.DevKey(ctx, log, cs, *namespace, op)
		}
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "bulkhead-agent: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	fs.SetOutput(stderr)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return 2
	}
	if *namespace == "" {
		fmt.Fprintf(stderr, "%s: --namespace (or $POD_NAMESPACE) is required\n", fs.Name())
		return 2
	}
	if args[0] != "dev-key" && *vaultAddr == "" {
		fmt.Fprintf(stderr, "%s: --vault-address (or $VAULT_ADDR) is required\n", fs.Name())
		return 2
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(stderr, "%s: --log-level %q: want debug, info, warn or error\n", fs.Name(), *level)
		return 2
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: l}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := do(ctx, log); err != nil {
		log.Error(fs.Name(), "error", err)
		return 1
	}
	return 0
}
