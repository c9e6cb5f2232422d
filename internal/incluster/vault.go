package incluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"time"

	vault "github.com/hashicorp/vault/api"
	"k8s.io/client-go/kubernetes"
)

// Names of the objects the bootstrap makes for Vault.
const (
	// VaultTLSSecret holds Vault's serving certificate and key (tls.crt,
	// tls.key); VaultCAConfigMap the CA that signed it (ca.crt), which
	// every client of Vault trusts. The CA's key is discarded.
	VaultTLSSecret   = "vault-tls"
	VaultCAConfigMap = "vault-ca"
	// VaultInitSecret holds the unseal key and the root token (only the
	// bootstrap and the unsealer can read it).
	VaultInitSecret = "vault-init"
)

// vaultTLS makes a CA and Vault's serving certificate for its Service's
// names (and loopback, for the unsealer beside it).
func vaultTLS(namespace, service string) (map[string][]byte, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "bulkhead vault CA (" + namespace + ")"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.AddDate(10, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: service + "." + namespace + ".svc"},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.AddDate(5, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{service, service + "." + namespace, service + "." + namespace + ".svc", service + "." + namespace + ".svc.cluster.local", "localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return map[string][]byte{
		"tls.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"tls.key": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		"ca.crt":  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
	}, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

// vaultClient is a client of addr that trusts caPEM.
func vaultClient(addr string, caPEM []byte) (*vault.Client, error) {
	conf := vault.DefaultConfig()
	conf.Address = addr
	conf.MaxRetries = 0
	if err := conf.ConfigureTLS(&vault.TLSConfig{CACertBytes: caPEM}); err != nil {
		return nil, fmt.Errorf("vault TLS: %w", err)
	}
	return vault.NewClient(conf)
}

// initAndUnseal initialises Vault once (one unseal key: the cluster's
// Secret is where it is kept), keeping the unseal key and root token in
// VaultInitSecret, and unseals it. It returns the root token.
func initAndUnseal(ctx context.Context, log *slog.Logger, cs kubernetes.Interface, namespace string, v *vault.Client) (string, error) {
	initialized, err := v.Sys().InitStatusWithContext(ctx)
	if err != nil {
		return "", fmt.Errorf("vault init status: %w", err)
	}
	if !initialized {
		// The keys exist only in Vault's answer until the Secret holds them:
		// the Secret is written before anything else, retried until it is.
		resp, err := v.Sys().InitWithContext(ctx, &vault.InitRequest{SecretShares: 1, SecretThreshold: 1})
		if err != nil {
			return "", fmt.Errorf("vault init: %w", err)
		}
		data := map[string][]byte{"unseal-key": []byte(resp.KeysB64[0]), "root-token": []byte(resp.RootToken)}
		for {
			_, created, err := ensureSecret(ctx, cs, namespace, VaultInitSecret, func() (map[string][]byte, error) { return data, nil })
			if err == nil && !created {
				return "", fmt.Errorf("secret %s existed before Vault was initialised: delete it and Vault's storage to start over", VaultInitSecret)
			}
			if err == nil {
				break
			}
			log.Error("keeping Vault's unseal key (retrying)", "secret", VaultInitSecret, "error", err)
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(2 * time.Second):
			}
		}
		log.Info("initialised Vault", "secret", VaultInitSecret)
	}
	return unseal(ctx, log, cs, namespace, v)
}

// unseal unseals Vault with the key in VaultInitSecret when it is sealed,
// and returns the root token.
func unseal(ctx context.Context, log *slog.Logger, cs kubernetes.Interface, namespace string, v *vault.Client) (string, error) {
	s, err := cs.CoreV1().Secrets(namespace).Get(ctx, VaultInitSecret, getOpts)
	if err != nil {
		return "", fmt.Errorf("secret %s: %w", VaultInitSecret, err)
	}
	key, token := string(s.Data["unseal-key"]), string(s.Data["root-token"])
	if key == "" || token == "" {
		return "", fmt.Errorf("secret %s: no unseal-key or root-token", VaultInitSecret)
	}
	st, err := v.Sys().SealStatusWithContext(ctx)
	if err != nil {
		return "", fmt.Errorf("vault seal status: %w", err)
	}
	if st.Sealed {
		st, err = v.Sys().UnsealWithContext(ctx, key)
		if err != nil {
			return "", fmt.Errorf("vault unseal: %w", err)
		}
		if st.Sealed {
			return "", errors.New("vault is still sealed after the unseal key")
		}
		log.Info("unsealed Vault")
	}
	return token, nil
}

// waitVault waits until Vault answers (initialised or not).
func waitVault(ctx context.Context, log *slog.Logger, v *vault.Client) error {
	return retry(ctx, log, "vault", func(ctx context.Context) error {
		_, err := v.Sys().InitStatusWithContext(ctx)
		return err
	})
}

// retry calls fn every 2 s until it succeeds or ctx ends, logging every
// 15 s what it waits for.
func retry(ctx context.Context, log *slog.Logger, what string, fn func(context.Context) error) error {
	start := time.Now()
	last := time.Time{}
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := fn(cctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Since(last) > 15*time.Second {
			log.Info("waiting", "for", what, "since", time.Since(start).Round(time.Second).String(), "error", err)
			last = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last error: %v)", what, ctx.Err(), err)
		case <-time.After(2 * time.Second):
		}
	}
}
