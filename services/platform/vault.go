package platform

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	"github.com/bulkhead-mesh/bulkhead/internal/pki"
)

// Secrets is a service's Vault KV secret. Its values are never logged.
type Secrets map[string]string

// Get returns the value of key, or an error naming the path and key.
func (s Secrets) Get(key string) (string, error) {
	v, ok := s[key]
	if !ok || v == "" {
		keys := make([]string, 0, len(s))
		for k := range s {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return "", fmt.Errorf("vault secret has no %q (it has: %s)", key, strings.Join(keys, ", "))
	}
	return v, nil
}

// String hides the values.
func (s Secrets) String() string { return fmt.Sprintf("Secrets(%d keys)", len(s)) }

func readSecrets(ctx context.Context, cfg Config, log *slog.Logger) (Secrets, error) {
	out, err := readKV(ctx, cfg, cfg.SecretsPath, log)
	if err != nil {
		return nil, err
	}
	log.Info("secrets read from vault", "path", kvMount(cfg)+"/"+cfg.SecretsPath, "keys", len(out))
	return out, nil
}

// ReadSecret reads one key of a Vault KV secret other than the service's
// own (its Vault policy must allow it: inference reads the API keys of
// upstreams under bulkhead/upstreams/). It logs in for the read, as every
// use of Vault does.
func (rt *Runtime) ReadSecret(ctx context.Context, path, key string) (string, error) {
	kv, err := readKV(ctx, rt.Config, path, rt.Log)
	if err != nil {
		return "", err
	}
	v, err := kv.Get(key)
	if err != nil {
		return "", fmt.Errorf("%s/%s: %w", kvMount(rt.Config), path, err)
	}
	return v, nil
}

func kvMount(cfg Config) string {
	if cfg.Vault.KVMount == "" {
		return "secret"
	}
	return cfg.Vault.KVMount
}

func readKV(ctx context.Context, cfg Config, path string, log *slog.Logger) (Secrets, error) {
	mount := kvMount(cfg)
	client, err := pki.Login(ctx, cfg.Vault)
	if err != nil {
		return nil, err
	}
	defer pki.Revoke(ctx, client, log)
	kv, err := client.KVv2(mount).Get(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("vault: read %s/%s: %w", mount, path, err)
	}
	out := Secrets{}
	for k, v := range kv.Data {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("vault: %s/%s: key %q is not a string", mount, path, k)
		}
		out[k] = s
	}
	return out, nil
}
