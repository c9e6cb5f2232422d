package localrun

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	controlplane "github.com/bulkhead-mesh/bulkhead/control-plane"
	"github.com/bulkhead-mesh/bulkhead/internal/components"
	"github.com/bulkhead-mesh/bulkhead/internal/pki"
	bhvault "github.com/bulkhead-mesh/bulkhead/vault"
)

// startControlPlane runs the control plane in production mode: the xDS
// connection is mTLS (its certificate from Vault's PKI, renewed at two
// thirds of its life), every node proves its identity, and proven Envoy
// nodes get their certificates over SDS.
func startControlPlane(ctx context.Context, opts Options, state, endpointsDir string, vlt *components.Vault) (*controlplane.ControlPlane, string, func() error, error) {
	logFile, err := os.OpenFile(filepath.Join(state, "control-plane.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, "", nil, err
	}
	log := slog.New(slog.NewJSONHandler(logFile, nil))
	v, err := pki.Client(vlt.Addr, vlt.RootToken)
	if err != nil {
		logFile.Close()
		return nil, "", nil, err
	}
	certs := pki.CertFilesIn(filepath.Join(state, "certs", bhvault.ControlPlane))
	stopRenew, err := keepCertificate(ctx, log, v, bhvault.ControlPlane, certs)
	if err != nil {
		logFile.Close()
		return nil, "", nil, err
	}
	cp, err := controlplane.Start(ctx, controlplane.Options{
		ConfigDirs:   []string{opts.MeshDir, endpointsDir},
		XDSAddress:   opts.XDSAddress,
		AdminAddress: opts.AdminAddress,
		TLS:          &controlplane.TLSFiles{Certificate: certs.Certificate, PrivateKey: certs.PrivateKey, CA: certs.CA},
		Issuer:       pki.VaultIssuer{Client: v},
		Log:          log,
	})
	if err != nil {
		stopRenew()
		logFile.Close()
		return nil, "", nil, err
	}
	where := fmt.Sprintf("xDS %s (mTLS, nodes prove their identity), admin http://%s (reads %s and %s; log %s)",
		cp.XDSAddr(), cp.AdminAddr(), opts.MeshDir, relLog(endpointsDir), relLog(filepath.Join(state, "control-plane.log")))
	return cp, where, func() error { stopRenew(); err := cp.Stop(); logFile.Close(); return err }, nil
}
