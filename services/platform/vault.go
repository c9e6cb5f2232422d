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
	mount := cfg.Vault.KVMount
	if mount == "" {
		mount = "secret"
	}
	client, err := pki.Login(ctx, cfg.Vault)
	if err != nil {
		return nil, err
	}
	defer pki.Revoke(ctx, client, log)
	kv, err := client.KVv2(mount).Get(ctx, cfg.SecretsPath)
	if err != nil {
		return nil, fmt.Errorf("vault: read %s/%s: %w", mount, cfg.SecretsPath, err)
	}
	out := Secrets{}
	for k, v := range kv.Data {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("vault: %s/%s: key %q is not a string", mount, cfg.SecretsPath, k)
		}
		out[k] = s
	}
	log.Info("secrets read from vault", "path", mount+"/"+cfg.SecretsPath, "keys", len(out))
	return out, nil
}
