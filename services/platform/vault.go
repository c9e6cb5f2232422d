package platform

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
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

// UpstreamKey reads the API key of an OpenAI-compatible upstream from
// its Vault KV secret at path (inference's and the models service's Vault
// policies allow bulkhead/upstreams/* only) and checks that the secret
// lets it go to baseURL. It logs in for the read, as every use of Vault
// does.
func (rt *Runtime) UpstreamKey(ctx context.Context, path, key, baseURL string) (string, error) {
	kv, err := readKV(ctx, rt.Config, path, rt.Log)
	if err != nil {
		return "", err
	}
	return BoundKey(kv, kvMount(rt.Config)+"/"+path, key, baseURL)
}

// HostsKey is the key of an upstream's Vault secret that lists, comma
// separated, the hosts (host, or host:port) its API key may be sent to.
// The key is bound to them: whoever may edit a Model object cannot point
// the key at a server of their own. A secret without it is refused.
const HostsKey = "hosts"

// BoundKey is the key of secret s (at where, for errors) if s lets it go
// to baseURL's host.
func BoundKey(s Secrets, where, key, baseURL string) (string, error) {
	v, err := s.Get(key)
	if err != nil {
		return "", fmt.Errorf("%s: %w", where, err)
	}
	u, err := url.Parse(baseURL)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("base URL %q has no host", baseURL)
	}
	hosts, ok := s[HostsKey]
	if !ok || strings.TrimSpace(hosts) == "" {
		return "", fmt.Errorf("%s has no %q: list the hosts its key may be sent to (e.g. %s=%s), so that the key is not sent where a Model object says", where, HostsKey, HostsKey, u.Host)
	}
	for _, h := range strings.Split(hosts, ",") {
		h = strings.ToLower(strings.TrimSpace(h))
		if h != "" && (h == strings.ToLower(u.Host) || (!strings.Contains(h, ":") && h == strings.ToLower(u.Hostname()))) {
			return v, nil
		}
	}
	return "", fmt.Errorf("%s binds its key to %s=%q; the backend's base URL %s is not one of them", where, HostsKey, hosts, baseURL)
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
