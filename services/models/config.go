package models

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"google.golang.org/protobuf/proto"
	"k8s.io/client-go/rest"

	"github.com/bulkhead-mesh/bulkhead/internal/yamldoc"
	"github.com/bulkhead-mesh/bulkhead/services/models/modelconfig"
	modelsv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/models/v1"
)

// Options are the models service's own settings.
type Options struct {
	// ConfigDirs hold Model objects as YAML (universal mode), watched:
	// every change is applied without a restart.
	ConfigDirs []string
	// KubernetesModels watches the Model objects of one namespace on the
	// API server instead (Kubernetes mode), and writes their status.
	KubernetesModels bool
	// KubernetesNamespace is that namespace (default: the pod's).
	KubernetesNamespace string
	// KubeConfig reaches the API server (default: in-cluster; tests).
	KubeConfig *rest.Config
	// ProbeInterval is how often the backends of Model objects are asked
	// GET /models for their Ready condition (default 15s).
	ProbeInterval time.Duration
}

// Flags registers the options as flags.
func (o *Options) Flags(fs *flag.FlagSet) {
	fs.Func("config-dir", "a directory of Model objects (YAML), watched; repeatable", func(v string) error {
		if v == "" {
			return errors.New("empty directory")
		}
		o.ConfigDirs = append(o.ConfigDirs, v)
		return nil
	})
	fs.BoolVar(&o.KubernetesModels, "kubernetes-models", false, "watch the Model objects (models.bulkhead.dev) of a namespace on the API server and write their status (in a cluster)")
	fs.StringVar(&o.KubernetesNamespace, "kubernetes-namespace", "", "the namespace of the Model objects (default: $POD_NAMESPACE, else the pod's service account's)")
	fs.DurationVar(&o.ProbeInterval, "probe-interval", 15*time.Second, "how often the backends of Model objects are probed for readiness")
}

// source is where Model objects come from: directories (universal
// mode) or the API server (Kubernetes mode).
type source interface {
	// watch calls changed after every change, until ctx ends.
	watch(ctx context.Context, changed func()) error
	// load reads every object now.
	load(ctx context.Context) *modelconfig.Set
	// report publishes the status (Kubernetes mode: each object's
	// conditions); a no-op for a source that keeps none of its own.
	report(ctx context.Context, st *modelsv1.ListModelConfigsResponse)
}

// config applies the Model objects of its source to the registry and
// keeps their status.
type config struct {
	s      *server
	src    source
	secret func(ctx context.Context, path, key, baseURL string) (string, error)
	client *http.Client

	mu      sync.Mutex
	set     *modelconfig.Set
	refused map[string]string    // name → why the registry refused an object the schema accepted
	ready   map[string]readiness // name → Ready condition
	version map[string]int64     // name → registry version that serves it
}

type readiness struct {
	ok  bool
	msg string
}

// run applies the source now and after every change, and probes the
// backends, until ctx ends.
func (c *config) run(ctx context.Context, interval time.Duration) error {
	changes := make(chan struct{}, 1)
	if err := c.src.watch(ctx, func() {
		select {
		case changes <- struct{}{}:
		default:
		}
	}); err != nil {
		return err
	}
	c.apply(ctx)
	go func() {
		probe := time.NewTicker(interval)
		defer probe.Stop()
		// Editors write a file in several steps, kubectl applies several
		// objects: apply once they are done.
		var settle <-chan time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case <-changes:
				settle = time.After(100 * time.Millisecond)
			case <-settle:
				settle = nil
				c.apply(ctx)
			case <-probe.C:
				c.probe(ctx)
				c.src.report(ctx, c.status())
			}
		}
	}()
	return nil
}

// dirSource reads directories of YAML, watched with fsnotify.
type dirSource struct {
	dirs []string
	log  interface{ Warn(string, ...any) }
}

func (d *dirSource) watch(ctx context.Context, changed func()) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("models: watch: %w", err)
	}
	for _, dir := range d.dirs {
		if err := yamldoc.WatchTree(w, dir); err != nil {
			w.Close()
			return fmt.Errorf("models: %w", err)
		}
	}
	go func() {
		defer w.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				yamldoc.Follow(w, ev)
				changed()
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				d.log.Warn("watching the model configuration", "dirs", d.dirs, "error", err)
			}
		}
	}()
	return nil
}

func (d *dirSource) load(context.Context) *modelconfig.Set { return modelconfig.LoadDirs(d.dirs...) }

func (d *dirSource) report(context.Context, *modelsv1.ListModelConfigsResponse) {}

// apply reads the source and brings the registry in line: accepted
// objects are registered (a new version when they changed); a refused
// one leaves the version accepted before in force; the model of an
// object that is gone is disabled, never deleted (unless some file could
// not be read at all: its objects may be only mis-edited).
func (c *config) apply(ctx context.Context) {
	set := c.src.load(ctx)
	names := map[string]bool{}
	for _, o := range set.Objects {
		names[o.Name] = true
	}
	refused := map[string]string{}
	version := map[string]int64{}
	for _, o := range set.Objects {
		if !o.Accepted() {
			c.s.log.Warn("model object refused", "model", o.Name, "origin", o.Origin, "reason", o.Message())
			continue
		}
		m := modelconfig.ToRegistry(o.Model)
		if why := c.s.checkConfig(m, names); why != "" {
			refused[o.Name] = why
			c.s.log.Warn("model object refused", "model", o.Name, "origin", o.Origin, "reason", why)
			continue
		}
		cur, ok := c.s.current(o.Name)
		if ok && sameModel(cur, m) {
			version[o.Name] = cur.Version
			continue
		}
		out, err := c.s.store.upsert(ctx, m)
		if err != nil {
			refused[o.Name] = "registering: " + err.Error()
			c.s.log.Warn("registering a model object", "model", o.Name, "error", err)
			continue
		}
		version[o.Name] = out.Version
	}
	if len(set.Errs) == 0 {
		for _, m := range c.s.all() {
			if m.Source == modelconfig.Source && !names[m.Name] && m.State == modelsv1.ModelState_MODEL_STATE_ENABLED {
				if _, err := c.s.store.setState(ctx, m.Name, modelsv1.ModelState_MODEL_STATE_DISABLED, removedReason); err != nil {
					c.s.log.Warn("disabling a removed model", "model", m.Name, "error", err)
				}
			}
		}
	}
	if err := c.s.reload(ctx); err != nil {
		c.s.log.Warn("reloading the registry", "error", err)
	}
	c.mu.Lock()
	c.set, c.refused, c.version = set, refused, version
	c.mu.Unlock()
	c.probe(ctx)
	c.src.report(ctx, c.status())
}

// sameModel says whether registering m would change nothing of cur.
func sameModel(cur, m *modelsv1.Model) bool {
	if cur.State == modelsv1.ModelState_MODEL_STATE_DISABLED && cur.StateReason == removedReason {
		return false // registering it enables it again
	}
	a, b := proto.CloneOf(cur), proto.CloneOf(m)
	for _, x := range []*modelsv1.Model{a, b} {
		x.Version, x.State, x.StateReason, x.CreatedAt, x.CallsTools = 0, 0, "", nil, false
	}
	if b.OwnedBy == "" {
		b.OwnedBy = ownedBy(b)
	}
	return proto.Equal(a, b)
}

// checkConfig is the registry's judgement of an object the schema
// accepted: its rules, and names that must exist.
func (s *server) checkConfig(m *modelsv1.Model, declared map[string]bool) string {
	if err := validate(m); err != nil {
		return err.Error()
	}
	if cur, ok := s.current(m.Name); ok && cur.AccountId != "" {
		return fmt.Sprintf("metadata.name: %q is a fine-tuned model of an account", m.Name)
	}
	exists := func(name string) bool {
		_, ok := s.current(name)
		return ok || declared[name]
	}
	for i, f := range m.Fallbacks {
		if !exists(f) {
			return fmt.Sprintf("spec.fallbacks[%d]: model %q does not exist", i, f)
		}
	}
	if d := m.DeprecatedFor; d != "" && !exists(d) {
		return fmt.Sprintf("spec.deprecatedFor: model %q does not exist", d)
	}
	return ""
}

// probe asks every backend of the accepted openai objects GET /models, as
// inference would call it (with its API key), for the Ready condition.
func (c *config) probe(ctx context.Context) {
	c.mu.Lock()
	set := c.set
	c.mu.Unlock()
	if set == nil {
		return
	}
	ready := map[string]readiness{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, o := range set.Objects {
		if !o.Accepted() {
			continue
		}
		m := modelconfig.ToRegistry(o.Model)
		if m.Engine == "builtin" {
			mu.Lock()
			ready[o.Name] = readiness{true, "served by the builtin engine"}
			mu.Unlock()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var answered, failed []string
			for _, u := range m.Upstreams {
				if err := c.probeOne(ctx, u.GetBaseUrl(), u.GetApiKeyVaultPath(), u.GetApiKeyVaultKey()); err != nil {
					failed = append(failed, fmt.Sprintf("%s: %v", u.GetName(), err))
				} else {
					answered = append(answered, u.GetName())
				}
			}
			r := readiness{ok: len(answered) > 0}
			switch {
			case len(failed) == 0:
				r.msg = "every backend answered"
			case r.ok:
				r.msg = fmt.Sprintf("%s answered; %s", strings.Join(answered, ", "), strings.Join(failed, "; "))
			default:
				r.msg = "no backend answered: " + strings.Join(failed, "; ")
			}
			mu.Lock()
			ready[o.Name] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	c.mu.Lock()
	c.ready = ready
	c.mu.Unlock()
	c.follow(ctx, ready)
}

// probeReason prefixes the state reason of a model the probe found with
// no backend answering: Resolve then falls back along its fallbacks
// until one answers again.
const probeReason = "readiness probe: "

// follow makes the registry state of the config models follow their
// Ready condition: not ready is UNHEALTHY (Resolve serves the fallbacks
// instead), ready again is ENABLED, but only where the probe itself put
// the model out (an operator's state stays).
func (c *config) follow(ctx context.Context, ready map[string]readiness) {
	changed := false
	for name, r := range ready {
		cur, ok := c.s.current(name)
		if !ok || cur.Source != modelconfig.Source {
			continue
		}
		var to modelsv1.ModelState
		switch {
		case !r.ok && cur.State == modelsv1.ModelState_MODEL_STATE_ENABLED:
			to = modelsv1.ModelState_MODEL_STATE_UNHEALTHY
		case r.ok && cur.State == modelsv1.ModelState_MODEL_STATE_UNHEALTHY && strings.HasPrefix(cur.StateReason, probeReason):
			to = modelsv1.ModelState_MODEL_STATE_ENABLED
		default:
			continue
		}
		reason := ""
		if !r.ok {
			reason = probeReason + r.msg
		}
		if _, err := c.s.store.setState(ctx, name, to, reason); err != nil {
			c.s.log.Warn("following the readiness of a model", "model", name, "error", err)
			continue
		}
		c.s.log.Warn("model state follows its readiness", "model", name, "state", stateName(to), "reason", r.msg)
		changed = true
	}
	if changed {
		if err := c.s.reload(ctx); err != nil {
			c.s.log.Warn("reloading the registry", "error", err)
		}
	}
}

func (c *config) probeOne(ctx context.Context, baseURL, keyPath, keyName string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(baseURL, "/")+"/models", nil)
	if err != nil {
		return err
	}
	if keyPath != "" {
		key, err := c.secret(ctx, keyPath, keyName, baseURL)
		if err != nil {
			return fmt.Errorf("API key: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("GET /models answered %s", resp.Status)
	}
	return nil
}

// status is ListModelConfigs' answer.
func (c *config) status() *modelsv1.ListModelConfigsResponse {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := &modelsv1.ListModelConfigsResponse{}
	if c.set == nil {
		return out
	}
	for _, e := range c.set.Errs {
		out.Errors = append(out.Errors, e.Error())
	}
	for _, o := range c.set.Objects {
		mc := &modelsv1.ModelConfig{Name: o.Name, Origin: o.Origin, Accepted: o.Accepted(), AcceptedMessage: o.Message(), Yaml: o.YAML, Version: c.version[o.Name]}
		if o.Model != nil {
			mc.Generation = o.Model.Generation
		}
		if why, ok := c.refused[o.Name]; ok {
			mc.Accepted, mc.AcceptedMessage = false, why
		}
		if cur, ok := c.s.current(o.Name); ok && cur.Source == modelconfig.Source && !mc.Accepted {
			mc.AcceptedMessage += fmt.Sprintf(" (version %d, accepted before, stays in force)", cur.Version)
			mc.Version = cur.Version
		}
		r, ok := c.ready[o.Name]
		switch {
		case !mc.Accepted && mc.Version == 0:
			mc.ReadyMessage = "not accepted"
		case ok:
			mc.Ready, mc.ReadyMessage = r.ok, r.msg
		default:
			mc.ReadyMessage = "not probed yet"
		}
		out.Configs = append(out.Configs, mc)
	}
	return out
}
