package models_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/bulkhead-mesh/bulkhead/internal/stack"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
	"github.com/bulkhead-mesh/bulkhead/services/models"
	"github.com/bulkhead-mesh/bulkhead/services/platform"
	modelsv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/models/v1"
)

func TestRegistryAndResolve(t *testing.T) {
	s := stack.New(t)
	s.StartService("models", models.Setup(&models.Options{}), stack.Options{})
	c := modelsv1.NewModelsServiceClient(s.Dial("models"))
	ctx := t.Context()
	wait := grpc.WaitForReady(true)

	list, err := c.ListModels(ctx, &modelsv1.ListModelsRequest{}, wait)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range list.Models {
		names = append(names, m.Name)
	}
	if strings.Join(names, ",") != "deepseek-chat,deepseek-reasoner,deepseek-v4-flash,deepseek-v4-pro" {
		t.Fatalf("seeded models %v", names)
	}
	// DeepSeek V4: both new models think by default; the old names are
	// flash without and with thinking, deprecated for it.
	for _, m := range list.Models {
		want := map[string]struct {
			thinking   modelsv1.Thinking
			deprecated string
		}{
			"deepseek-v4-flash": {modelsv1.Thinking_THINKING_ON_BY_DEFAULT, ""},
			"deepseek-v4-pro":   {modelsv1.Thinking_THINKING_ON_BY_DEFAULT, ""},
			"deepseek-chat":     {modelsv1.Thinking_THINKING_OFF_BY_DEFAULT, "deepseek-v4-flash"},
			"deepseek-reasoner": {modelsv1.Thinking_THINKING_ON_BY_DEFAULT, "deepseek-v4-flash"},
		}[m.Name]
		if m.Thinking != want.thinking || m.DeprecatedFor != want.deprecated {
			t.Errorf("%s: thinking %v deprecated for %q; want %v and %q", m.Name, m.Thinking, m.DeprecatedFor, want.thinking, want.deprecated)
		}
	}

	// A fine-tuned model is visible to its account only.
	ft := &modelsv1.Model{Name: "ft:deepseek-chat:acme", Engine: "builtin", EngineModel: "opticks-3gram", ContextLength: 4096,
		MaxOutputTokens: 1024, DefaultMaxTokens: 128, AccountId: "acct-acme", Fallbacks: []string{"deepseek-chat"}}
	reg, err := c.RegisterModel(ctx, &modelsv1.RegisterModelRequest{Model: ft})
	if err != nil {
		t.Fatal(err)
	}
	if reg.Model.Version != 1 || reg.Model.OwnedBy != "acct-acme" {
		t.Fatalf("registered %v", reg.Model)
	}
	if _, err := c.GetModel(ctx, &modelsv1.GetModelRequest{Name: ft.Name, AccountId: "someone-else"}); status.Code(err) != codes.NotFound {
		t.Fatalf("another account sees the fine-tuned model: %v", err)
	}
	// Registering again is a new version.
	reg, err = c.RegisterModel(ctx, &modelsv1.RegisterModelRequest{Model: ft})
	if err != nil || reg.Model.Version != 2 {
		t.Fatalf("second registration: %v %v", reg, err)
	}

	// Resolve follows the chain past disabled and unhealthy models.
	resolve := func(name string) (*modelsv1.ResolveResponse, error) {
		return c.Resolve(ctx, &modelsv1.ResolveRequest{Name: name, AccountId: "acct-acme"})
	}
	if r, err := resolve("deepseek-reasoner"); err != nil || r.Model.Name != "deepseek-reasoner" || len(r.Skipped) != 0 {
		t.Fatalf("healthy: %v %v", r, err)
	}
	if _, err := c.SetModelState(ctx, &modelsv1.SetModelStateRequest{Name: "deepseek-reasoner", State: modelsv1.ModelState_MODEL_STATE_UNHEALTHY, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if r, err := resolve("deepseek-reasoner"); err != nil || r.Model.Name != "deepseek-chat" || strings.Join(r.Skipped, ",") != "deepseek-reasoner" {
		t.Fatalf("unhealthy reasoner: %v %v; want deepseek-chat, skipping the reasoner", r, err)
	}
	if _, err := c.SetModelState(ctx, &modelsv1.SetModelStateRequest{Name: "deepseek-chat", State: modelsv1.ModelState_MODEL_STATE_DISABLED}); err != nil {
		t.Fatal(err)
	}
	_, err = resolve("deepseek-reasoner")
	if reason, _, retry := platform.Details(err); status.Code(err) != codes.Unavailable || reason != "MODEL_UNAVAILABLE" || retry == 0 {
		t.Fatalf("nothing left: %v (reason %q, retry %v)", err, reason, retry)
	}
	if _, err := resolve("gpt-17"); status.Code(err) != codes.NotFound {
		t.Fatalf("unknown model: %v", err)
	}

	// Bad registrations name the field.
	for field, m := range map[string]*modelsv1.Model{
		"model.name":               {Name: "Bad Name", Engine: "builtin", EngineModel: "x", ContextLength: 1, MaxOutputTokens: 1, DefaultMaxTokens: 1},
		"model.engine":             {Name: "x", Engine: "tpu", EngineModel: "x", ContextLength: 1, MaxOutputTokens: 1, DefaultMaxTokens: 1},
		"model.max_output_tokens":  {Name: "x", Engine: "builtin", EngineModel: "x", ContextLength: 10, MaxOutputTokens: 11, DefaultMaxTokens: 1},
		"model.default_max_tokens": {Name: "x", Engine: "builtin", EngineModel: "x", ContextLength: 10, MaxOutputTokens: 5, DefaultMaxTokens: 6},
		"model.fallbacks":          {Name: "x", Engine: "builtin", EngineModel: "x", ContextLength: 10, MaxOutputTokens: 5, DefaultMaxTokens: 5, Fallbacks: []string{"nope"}},
	} {
		_, err := c.RegisterModel(ctx, &modelsv1.RegisterModelRequest{Model: m})
		if _, f, _ := platform.Details(err); status.Code(err) != codes.InvalidArgument || f != field {
			t.Errorf("want INVALID_ARGUMENT on %s; got %v (field %q)", field, err, f)
		}
	}
}

// The platform's Model objects (policies/models) declare exactly what the
// migrations seeded: applying them takes the models over as configuration
// and changes nothing a client sees.
func TestPlatformModelsAreTheSeeds(t *testing.T) {
	s := stack.New(t)
	seeded := s.StartService("models", models.Setup(&models.Options{}), stack.Options{Instance: "models-seed"})
	c := modelsv1.NewModelsServiceClient(s.Dial("models"))
	ctx := t.Context()
	before, err := c.ListModels(ctx, &modelsv1.ListModelsRequest{}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatal(err)
	}
	seeded.Stop()
	s.RemoveEndpoint("models-seed")
	s.StartService("models", models.Setup(&models.Options{ConfigDirs: []string{filepath.Join("..", "..", "policies", "models")}}), stack.Options{Instance: "models-config"})
	// The client's connection moves to the new replica.
	var cfg *modelsv1.ListModelConfigsResponse
	testenv.Eventually(t, 30*time.Second, "the configured replica answers", func() error {
		var err error
		cfg, err = c.ListModelConfigs(ctx, &modelsv1.ListModelConfigsRequest{}, grpc.WaitForReady(true))
		return err
	})
	if len(cfg.Errors) != 0 || len(cfg.Configs) != len(before.Models) {
		t.Fatalf("%d objects for %d seeded models; errors %v", len(cfg.Configs), len(before.Models), cfg.Errors)
	}
	for _, mc := range cfg.Configs {
		if !mc.Accepted || !mc.Ready {
			t.Errorf("%s (%s): accepted=%v %s; ready=%v %s", mc.Name, mc.Origin, mc.Accepted, mc.AcceptedMessage, mc.Ready, mc.ReadyMessage)
		}
	}
	after, err := c.ListModels(ctx, &modelsv1.ListModelsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range after.Models {
		b := before.Models[i]
		if m.Source != "config" || b.Source != "seed" {
			t.Errorf("%s: source %q (seeded as %q)", m.Name, m.Source, b.Source)
		}
		for _, x := range []*modelsv1.Model{m, b} {
			x.Version, x.Source, x.CreatedAt = 0, "", nil
		}
		if !proto.Equal(m, b) {
			t.Errorf("%s as configured differs from the seed:\n%v\n%v", m.Name, m, b)
		}
	}
}
