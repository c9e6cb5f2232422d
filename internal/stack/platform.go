package stack

import (
	"strconv"
	"testing"

	"google.golang.org/grpc"

	"github.com/bulkhead-mesh/bulkhead/services/api"
	"github.com/bulkhead-mesh/bulkhead/services/auth"
	"github.com/bulkhead-mesh/bulkhead/services/chat"
	"github.com/bulkhead-mesh/bulkhead/services/inference"
	"github.com/bulkhead-mesh/bulkhead/services/models"
	"github.com/bulkhead-mesh/bulkhead/services/platform"
	authv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/auth/v1"
	usersv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/users/v1"
	"github.com/bulkhead-mesh/bulkhead/services/training"
	"github.com/bulkhead-mesh/bulkhead/services/users"
	"github.com/bulkhead-mesh/bulkhead/services/webhooks"
)

// Platform is the whole chat-completion flow running in the test.
type Platform struct {
	*Stack
	// APIURL is the public API's base URL (http://127.0.0.1:PORT).
	APIURL string
	// Account and Key: a standard-tier account with a budget, and a user
	// key of it; AdminKey is an admin key of the same account.
	Account, Key, AdminKey string
	// Services by instance name.
	Services map[string]*platform.Service
}

// PlatformOptions tunes the services.
type PlatformOptions struct {
	Inference inference.Options
	Models    models.Options
	API       api.Options
	// Training, when set, starts the training service (fine-tuning) in
	// TrainingReplicas processes (default 1), each with a worker.
	Training         *training.Options
	TrainingReplicas int
	// Webhooks, when set, starts the webhooks service.
	Webhooks *webhooks.Options
}

// StartPlatform starts every service of the flow: users, models, two
// inference replicas, auth with its cache-only pool, chat and api.
func StartPlatform(t testing.TB, o PlatformOptions) *Platform {
	t.Helper()
	s := New(t)
	p := &Platform{Stack: s, Services: map[string]*platform.Service{}}
	if o.API.HTTPAddress == "" {
		o.API.HTTPAddress = "127.0.0.1:0"
	}
	start := func(name string, setup platform.Setup, so Options) {
		p.Services[so.Instance] = s.StartService(name, setup, so)
	}
	start("users", users.Setup(), Options{Instance: "users-1"})
	start("models", models.Setup(&o.Models), Options{Instance: "models-1"})
	start("inference", inference.Setup(&o.Inference), Options{Instance: "inference-1"})
	start("inference", inference.Setup(&o.Inference), Options{Instance: "inference-2"})
	start("auth", auth.Setup(&auth.Options{}), Options{Instance: "auth-1"})
	start("auth", auth.Setup(&auth.Options{CacheOnly: true}), Options{Instance: "auth-cache-1", Service: "auth-cache"})
	start("chat", chat.Setup(&chat.Options{OutboxDir: t.TempDir()}), Options{Instance: "chat-1"})
	if o.Training != nil {
		for i := range max(1, o.TrainingReplicas) {
			start("training", training.Setup(o.Training), Options{Instance: "training-" + strconv.Itoa(i+1)})
		}
	}
	if o.Webhooks != nil {
		start("webhooks", webhooks.Setup(o.Webhooks), Options{Instance: "webhooks-1"})
	}
	start("api", api.Setup(&o.API), Options{Instance: "api-1"})
	p.APIURL = "http://" + p.Services["api-1"].HTTPAddrs()[0].String()

	ctx := t.Context()
	uc := usersv1.NewUsersServiceClient(s.Dial("users"))
	acct, err := uc.CreateAccount(ctx, &usersv1.CreateAccountRequest{Name: "test", Tier: "enterprise", BalanceMicros: 100_000_000,
		Limits: &usersv1.Limits{RequestsPerMinute: 1 << 30, TokensPerMinute: 1 << 40}}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatal(err)
	}
	p.Account = acct.Account.Id
	ac := authv1.NewAuthServiceClient(s.Dial("auth"))
	k, err := ac.CreateKey(ctx, &authv1.CreateKeyRequest{AccountId: p.Account, Name: "test"}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatal(err)
	}
	p.Key = k.Secret
	k, err = ac.CreateKey(ctx, &authv1.CreateKeyRequest{AccountId: p.Account, Name: "admin", Role: authv1.Role_ROLE_ADMIN})
	if err != nil {
		t.Fatal(err)
	}
	p.AdminKey = k.Secret
	return p
}
