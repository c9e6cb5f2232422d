package modelconfig

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/bulkhead-mesh/bulkhead/services/models/api/v1alpha1"
)

// FieldError is a problem with one field, named by its path in the object.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// NameRE is what a model name may be (the registry's rule).
var NameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._:-]{0,127}$`)

var backendNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// UpstreamSecretsPrefix is the only part of Vault's KV store an API key
// may come from: inference's Vault policy reads nothing else.
const UpstreamSecretsPrefix = "bulkhead/upstreams/"

// Defaults of what a Model may leave unset.
const (
	DefaultWeights             = "opticks-3gram"
	DefaultAPIKeyKey           = "api_key"
	DefaultConsecutiveFailures = 3
	DefaultEjectionTime        = 30 * time.Second
	DefaultConnectTimeout      = 5 * time.Second
	DefaultFirstTokenTimeout   = 60 * time.Second
	DefaultIdleTimeout         = 60 * time.Second
)

// Validate lists every problem of m, each naming its field.
func Validate(m *v1alpha1.Model) []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	if !NameRE.MatchString(m.Name) {
		bad("metadata.name", "%q must be 1-128 characters of a-z, 0-9, '.', '_', ':', '-', starting with a letter or digit", m.Name)
	}
	s := &m.Spec
	switch s.Engine {
	case "builtin":
		if len(s.Backends) > 0 {
			bad("spec.backends", "engine builtin has no backends (engine openai has)")
		}
		if s.PassiveHealth != nil {
			bad("spec.passiveHealth", "applies to the backends of engine openai")
		}
		if s.Builtin != nil && s.Builtin.Weights == "" {
			bad("spec.builtin.weights", "is required when spec.builtin is set")
		}
	case "openai":
		if s.Builtin != nil {
			bad("spec.builtin", "is for engine builtin")
		}
		validateBackends(s.Backends, bad)
		if h := s.PassiveHealth; h != nil {
			if h.ConsecutiveFailures < 0 {
				bad("spec.passiveHealth.consecutiveFailures", "must be at least 1")
			}
			positiveDuration("spec.passiveHealth.ejectionTime", h.EjectionTime, bad)
		}
	case "":
		bad("spec.engine", "is required: builtin or openai")
	default:
		bad("spec.engine", "%q is not an engine (builtin or openai)", s.Engine)
	}
	l := s.Limits
	switch {
	case l.ContextLength <= 0:
		bad("spec.limits.contextLength", "must be positive")
	case l.MaxOutputTokens < 0 || l.MaxOutputTokens > l.ContextLength:
		bad("spec.limits.maxOutputTokens", "must be in 1..contextLength (%d)", l.ContextLength)
	case l.DefaultMaxTokens < 0 || l.DefaultMaxTokens > maxOutput(l):
		bad("spec.limits.defaultMaxTokens", "must be in 1..maxOutputTokens (%d)", maxOutput(l))
	}
	for field, v := range map[string]string{"spec.prices.cacheHit": s.Prices.CacheHit, "spec.prices.cacheMiss": s.Prices.CacheMiss, "spec.prices.output": s.Prices.Output} {
		if _, err := Micros(v); err != nil {
			bad(field, "%v", err)
		}
	}
	switch s.Thinking {
	case "", "none", "enabled", "disabled":
	default:
		bad("spec.thinking", "%q is not a thinking mode (none, enabled or disabled)", s.Thinking)
	}
	seen := map[string]bool{}
	for i, f := range s.Fallbacks {
		field := fmt.Sprintf("spec.fallbacks[%d]", i)
		switch {
		case !NameRE.MatchString(f):
			bad(field, "%q is not a model name", f)
		case f == m.Name:
			bad(field, "names the model itself")
		case seen[f]:
			bad(field, "%q is listed twice", f)
		}
		seen[f] = true
	}
	if d := s.DeprecatedFor; d != "" && (d == m.Name || !NameRE.MatchString(d)) {
		bad("spec.deprecatedFor", "%q must name another model", d)
	}
	if v := s.Visibility; v != nil {
		if len(v.Accounts) == 0 {
			bad("spec.visibility.accounts", "must list at least one account (omit visibility for every account)")
		}
		for i, a := range v.Accounts {
			if strings.TrimSpace(a) == "" {
				bad(fmt.Sprintf("spec.visibility.accounts[%d]", i), "is empty")
			}
		}
	}
	return errs
}

func maxOutput(l v1alpha1.Limits) int32 {
	if l.MaxOutputTokens == 0 {
		return l.ContextLength
	}
	return l.MaxOutputTokens
}

func validateBackends(backends []v1alpha1.Backend, bad func(string, string, ...any)) {
	if len(backends) == 0 {
		bad("spec.backends", "engine openai needs at least one backend")
		return
	}
	names := map[string]bool{}
	weighted := false
	for i, b := range backends {
		f := func(name string) string { return fmt.Sprintf("spec.backends[%d].%s", i, name) }
		switch {
		case !backendNameRE.MatchString(b.Name):
			bad(f("name"), "%q must be 1-63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit", b.Name)
		case names[b.Name]:
			bad(f("name"), "%q is used by another backend", b.Name)
		}
		names[b.Name] = true
		if err := CheckBaseURL(b.BaseURL); err != nil {
			bad(f("baseURL"), "%v", err)
		}
		if k := b.APIKey; k != nil {
			p := k.VaultPath
			switch {
			case !strings.HasPrefix(p, UpstreamSecretsPrefix) || len(p) == len(UpstreamSecretsPrefix):
				bad(f("apiKey.vaultPath"), "%q must be under %s (the only secrets inference may read)", p, UpstreamSecretsPrefix)
			case strings.Contains(p, "..") || strings.ContainsAny(p, " *+") || strings.HasSuffix(p, "/"):
				bad(f("apiKey.vaultPath"), "%q is not a secret's path", p)
			}
		}
		if b.Weight != nil && (*b.Weight < 0 || *b.Weight > 1000) {
			bad(f("weight"), "%d must be in 0..1000", *b.Weight)
		}
		if b.Weight == nil || *b.Weight > 0 {
			weighted = true
		}
		if b.Priority < 0 || b.Priority > 9 {
			bad(f("priority"), "%d must be in 0..9", b.Priority)
		}
		if b.MaxConcurrency < 0 {
			bad(f("maxConcurrency"), "must not be negative")
		}
		if t := b.Timeouts; t != nil {
			positiveDuration(f("timeouts.connect"), t.Connect, bad)
			positiveDuration(f("timeouts.firstToken"), t.FirstToken, bad)
			positiveDuration(f("timeouts.idle"), t.Idle, bad)
		}
	}
	if !weighted {
		bad("spec.backends", "every backend has weight 0: nothing would take traffic")
	}
}

// CheckBaseURL says what is wrong with a backend's base URL, if anything.
func CheckBaseURL(raw string) error {
	if raw == "" {
		return fmt.Errorf("is required, e.g. http://127.0.0.1:11434/v1")
	}
	if !strings.HasPrefix(raw, "http://") && !strings.HasPrefix(raw, "https://") {
		return fmt.Errorf("%q must be an http:// or https:// URL", raw)
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("%q is not a URL: %v", raw, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q must be an http:// or https:// URL", raw)
	case u.Host == "":
		return fmt.Errorf("%q names no host", raw)
	case u.User != nil:
		return fmt.Errorf("%q must not carry credentials (use apiKey)", raw)
	case u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("%q must not have a query or fragment", raw)
	case strings.HasSuffix(strings.TrimSuffix(u.Path, "/"), "/chat/completions"):
		return fmt.Errorf("%q must end before /chat/completions", raw)
	}
	return nil
}

func positiveDuration(field string, d v1alpha1.Duration, bad func(string, string, ...any)) {
	if d == "" {
		return
	}
	v, err := time.ParseDuration(string(d))
	switch {
	case err != nil:
		bad(field, "%q is not a duration (like 500ms, 10s, 1m30s)", d)
	case v <= 0:
		bad(field, "%q must be positive", d)
	}
}

// Micros turns a decimal price ("0.14") into micro-units; "" is 0.
func Micros(price string) (int64, error) {
	if price == "" {
		return 0, nil
	}
	whole, frac, _ := strings.Cut(price, ".")
	if whole == "" || strings.Trim(whole, "0123456789") != "" || strings.Trim(frac, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a decimal price like \"0.14\"", price)
	}
	if len(frac) > 6 {
		return 0, fmt.Errorf("%q has more than six decimals", price)
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w > 1_000_000 {
		return 0, fmt.Errorf("%q is too large", price)
	}
	f, _ := strconv.ParseInt(frac+strings.Repeat("0", 6-len(frac)), 10, 64)
	return w*1_000_000 + f, nil
}
