package components

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// VaultOptions configures StartVault.
type VaultOptions struct {
	// Dir holds the log. Empty: a temporary directory removed by Close.
	Dir string
	// Port to listen on; 0 picks a free one.
	Port int
}

// Vault is a running `vault server -dev` (in memory, unsealed, KV v2 mounted
// at secret/) on 127.0.0.1.
type Vault struct {
	// Addr is the API address, e.g. http://127.0.0.1:8200.
	Addr string
	// RootToken is the dev server's root token.
	RootToken string
	Dir       string

	proc    *process
	tempDir bool
}

// StartVault starts the Vault built by `make tools`.
func StartVault(ctx context.Context, opts VaultOptions) (*Vault, error) {
	bin, err := toolBinary("vault")
	if err != nil {
		return nil, err
	}
	v := &Vault{RootToken: "bulkhead-dev-" + randomHex(16)}
	setDir := func(dir string, temp bool) { v.Dir, v.tempDir = dir, temp }
	if err := startIn(opts.Dir, "vault", opts.Port, setDir, func(port int) error { return v.start(ctx, bin, port) }); err != nil {
		return nil, err
	}
	return v, nil
}

func (v *Vault) start(ctx context.Context, bin string, port int) error {
	listen := "127.0.0.1:" + strconv.Itoa(port)
	args := []string{"server", "-dev",
		"-dev-listen-address=" + listen,
		// Keep the root token out of ~/.vault-token.
		"-dev-no-store-token",
	}
	// The root token is passed in the environment, not on the command line
	// where the process list would show it.
	env := append(os.Environ(),
		"VAULT_DEV_ROOT_TOKEN_ID="+v.RootToken,
		"VAULT_LOG_LEVEL=warn",
		"HOME="+v.Dir,
	)
	proc, err := startProcess("vault", bin, args, env, filepath.Join(v.Dir, "vault.log"), nil)
	if err != nil {
		return err
	}
	v.Addr = "http://" + listen
	v.proc = proc
	client, err := v.Client()
	if err != nil {
		_ = proc.stop(syscall.SIGTERM, 5*time.Second)
		return err
	}
	err = proc.waitReady(ctx, 60*time.Second, func(ctx context.Context) error {
		h, err := client.Sys().HealthWithContext(ctx)
		if err != nil {
			return err
		}
		if !h.Initialized || h.Sealed {
			return fmt.Errorf("initialized=%v sealed=%v", h.Initialized, h.Sealed)
		}
		// The dev server mounts KV v2 at secret/ just after it unseals.
		mounts, err := client.Sys().ListMountsWithContext(ctx)
		if err != nil {
			return err
		}
		if _, ok := mounts["secret/"]; !ok {
			return errors.New("secret/ not mounted yet")
		}
		return nil
	})
	if err != nil {
		return stopAfterFailedStart(proc, syscall.SIGTERM, err)
	}
	return nil
}

// Client returns a Vault API client logged in with the root token.
func (v *Vault) Client() (*vault.Client, error) {
	cfg := vault.DefaultConfig()
	cfg.Address = v.Addr
	cfg.MaxRetries = 0
	c, err := vault.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("vault client: %w", err)
	}
	c.SetToken(v.RootToken)
	return c, nil
}

// Close stops the server and removes a temporary directory.
func (v *Vault) Close() error {
	return stopServer(v.proc, syscall.SIGTERM, 10*time.Second, v.Dir, v.tempDir)
}
