// Package modelsctl is `bulkhead models`: the Model objects of a platform
// run by `bulkhead up`, listed with their status, shown one by one, and
// applied (validated here, then written to STATE/models, which the models
// service watches) or deleted. It talks to the models service as the
// operator, through the mesh, with the certificate `bulkhead up`
// provisioned under STATE/secrets.
package modelsctl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bulkhead-mesh/bulkhead/internal/pki"
	"github.com/bulkhead-mesh/bulkhead/internal/provision"
	"github.com/bulkhead-mesh/bulkhead/services/models/modelconfig"
	modelsv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/models/v1"
)

// Client reaches the models service of the platform whose state is in
// StateDir.
type Client struct {
	StateDir string
	// XDSAddress of the control plane; empty: BULKHEAD_XDS_ADDR of
	// STATE/env (written while `bulkhead up` runs), else 127.0.0.1:18000.
	XDSAddress string
}

func (c Client) xdsAddress() string {
	if c.XDSAddress != "" {
		return c.XDSAddress
	}
	if f, err := os.Open(filepath.Join(c.StateDir, "env")); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "export BULKHEAD_XDS_ADDR="); ok {
				return strings.Trim(v, "'")
			}
		}
	}
	return "127.0.0.1:18000"
}

func (c Client) dial() (modelsv1.ModelsServiceClient, func(), error) {
	certs := pki.CertFilesIn(filepath.Join(c.StateDir, "secrets", "operator"))
	if _, err := os.Stat(certs.Certificate); err != nil {
		return nil, nil, fmt.Errorf("no operator certificate in %s: is this the state directory of `bulkhead up` (--state-dir)?", certs.Dir)
	}
	cc, err := provision.Operator(c.xdsAddress(), fmt.Sprintf("bulkhead-models-%d", os.Getpid()), certs, true).Dial("models")
	if err != nil {
		return nil, nil, err
	}
	return modelsv1.NewModelsServiceClient(cc), func() { cc.Close() }, nil
}

func unreachable(err error) error {
	return fmt.Errorf("the models service: %w (is `bulkhead up` running?)", err)
}

// List prints every model of the registry with, for those declared as
// Model objects, their status.
func (c Client) List(ctx context.Context, w io.Writer) error {
	mc, closeFn, err := c.dial()
	if err != nil {
		return err
	}
	defer closeFn()
	reg, err := mc.ListModels(ctx, &modelsv1.ListModelsRequest{IncludeUnavailable: true})
	if err != nil {
		return unreachable(err)
	}
	cfg, err := mc.ListModelConfigs(ctx, &modelsv1.ListModelConfigsRequest{})
	if err != nil {
		return unreachable(err)
	}
	byName := map[string]*modelsv1.ModelConfig{}
	for _, o := range cfg.Configs {
		byName[o.Name] = o
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tENGINE\tBACKENDS\tSTATE\tVERSION\tSOURCE\tACCEPTED\tREADY\tMESSAGE")
	seen := map[string]bool{}
	for _, m := range reg.Models {
		seen[m.Name] = true
		acc, ready, msg := "-", "-", m.StateReason
		if o, ok := byName[m.Name]; ok {
			acc, ready, msg = yesNo(o.Accepted), yesNo(o.Ready), message(o)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\t%s\t%s\t%s\n", m.Name, m.Engine, len(m.Upstreams), stateName(m.State), m.Version, m.Source, acc, ready, msg)
	}
	// Objects refused before any version of them was accepted.
	for _, o := range cfg.Configs {
		if !seen[o.Name] {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\tconfig\t%s\t%s\t%s\n", o.Name, yesNo(o.Accepted), yesNo(o.Ready), message(o))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, e := range cfg.Errors {
		fmt.Fprintf(w, "error: %s\n", e)
	}
	return nil
}

func message(o *modelsv1.ModelConfig) string {
	if !o.Accepted {
		return o.AcceptedMessage
	}
	return o.ReadyMessage
}

// Get prints one Model object: where it was read, its conditions and
// its YAML.
func (c Client) Get(ctx context.Context, w io.Writer, name string) error {
	mc, closeFn, err := c.dial()
	if err != nil {
		return err
	}
	defer closeFn()
	cfg, err := mc.ListModelConfigs(ctx, &modelsv1.ListModelConfigsRequest{})
	if err != nil {
		return unreachable(err)
	}
	for _, o := range cfg.Configs {
		if o.Name == name {
			fmt.Fprintf(w, "# %s, read from %s, registry version %d\n", o.Name, o.Origin, o.Version)
			fmt.Fprintf(w, "# Accepted: %s (%s)\n# Ready: %s (%s)\n", yesNo(o.Accepted), o.AcceptedMessage, yesNo(o.Ready), o.ReadyMessage)
			fmt.Fprint(w, o.Yaml)
			return nil
		}
	}
	return fmt.Errorf("no Model object %q in the configuration (`bulkhead models list` shows them all)", name)
}

// Apply validates the Model objects of files and writes each to
// STATE/models/NAME.yaml; then, unless wait is 0, it waits that long for
// the models service to report each one's status and prints it. Nothing
// is written when any object is invalid.
func (c Client) Apply(ctx context.Context, w io.Writer, files []string, wait time.Duration) error {
	if len(files) == 0 {
		return errors.New("no file to apply (-f FILE)")
	}
	var objs []*modelconfig.Object
	var errs []error
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		got, ferrs := modelconfig.Decode(f, data)
		errs = append(errs, ferrs...)
		for _, o := range got {
			if !o.Accepted() {
				errs = append(errs, fmt.Errorf("%s: Model %s: %s", o.Origin, o.Name, o.Message()))
			}
			objs = append(objs, o)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("nothing applied:\n  %w", joinLines(errs))
	}
	if len(objs) == 0 {
		return errors.New("no Model object in the files")
	}
	dir := filepath.Join(c.StateDir, "models")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, o := range objs {
		path := filepath.Join(dir, o.Name+".yaml")
		body := fmt.Sprintf("# Written by bulkhead models apply from %s.\n%s", o.Origin, o.YAML)
		if err := os.WriteFile(path+".tmp", []byte(body), 0o644); err != nil {
			return err
		}
		// Atomic: the service never reads half a file.
		if err := os.Rename(path+".tmp", path); err != nil {
			return err
		}
		fmt.Fprintf(w, "model %s: written to %s\n", o.Name, path)
	}
	if wait <= 0 {
		return nil
	}
	return c.await(ctx, w, objs, wait)
}

// await reports the status of the objects once the models service has
// read the versions just written.
func (c Client) await(ctx context.Context, w io.Writer, objs []*modelconfig.Object, wait time.Duration) error {
	mc, closeFn, err := c.dial()
	if err != nil {
		return err
	}
	defer closeFn()
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	pending := map[string]string{}
	for _, o := range objs {
		pending[o.Name] = o.YAML
	}
	var refused []string
	for len(pending) > 0 {
		cfg, err := mc.ListModelConfigs(ctx, &modelsv1.ListModelConfigsRequest{})
		if err == nil {
			for _, o := range cfg.Configs {
				want, ok := pending[o.Name]
				if !ok || o.Yaml != want || (o.Accepted && !o.Ready && o.ReadyMessage == "not probed yet") {
					continue
				}
				delete(pending, o.Name)
				fmt.Fprintf(w, "model %s: accepted %s (%s); ready %s (%s)\n", o.Name, yesNo(o.Accepted), o.AcceptedMessage, yesNo(o.Ready), o.ReadyMessage)
				if !o.Accepted {
					refused = append(refused, o.Name)
				}
			}
		}
		if len(pending) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			names := make([]string, 0, len(pending))
			for n := range pending {
				names = append(names, n)
			}
			sort.Strings(names)
			if err != nil {
				return fmt.Errorf("no status for %s within %s: %w", strings.Join(names, ", "), wait, unreachable(err))
			}
			return fmt.Errorf("no status for %s within %s (is `bulkhead up` running on this state directory?)", strings.Join(names, ", "), wait)
		case <-time.After(200 * time.Millisecond):
		}
	}
	if len(refused) > 0 {
		return fmt.Errorf("refused: %s", strings.Join(refused, ", "))
	}
	return nil
}

// Delete removes STATE/models/NAME.yaml: the models service disables the
// model (its data stays).
func (c Client) Delete(w io.Writer, name string) error {
	path := filepath.Join(c.StateDir, "models", name+".yaml")
	if err := os.Remove(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s does not exist: only models applied with `bulkhead models apply` can be deleted here (the platform's are in policies/models)", path)
		}
		return err
	}
	fmt.Fprintf(w, "model %s: %s removed; the model is disabled\n", name, path)
	return nil
}

func joinLines(errs []error) error {
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return errors.New(strings.Join(msgs, "\n  "))
}

func yesNo(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

func stateName(s modelsv1.ModelState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "MODEL_STATE_"))
}
