// Package api is the public HTTP API: the DeepSeek/OpenAI wire contract
// (JSON and SSE) over the platform's gRPC services. It holds no business
// logic: it authenticates the caller (the gateway's identity token, or
// auth's ext_authz Check when no gateway is in front), translates, and
// maps gRPC statuses to the API's error shape.
package api

import (
	"context"
	"flag"
	"net/http"
	"strconv"
	"strings"
	"time"

	authzv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc/codes"

	"github.com/bulkhead-mesh/bulkhead/services/apierr"
	"github.com/bulkhead-mesh/bulkhead/services/identity"
	"github.com/bulkhead-mesh/bulkhead/services/platform"
	authv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/auth/v1"
	chatv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/chat/v1"
	modelsv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/models/v1"
	trainingv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/training/v1"
	usersv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/users/v1"
	webhooksv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/webhooks/v1"
)

// Options are the api service's own settings.
type Options struct {
	// HTTPAddress is the public API's address.
	HTTPAddress string
	// KeepAlive is the longest silence on an SSE stream before a
	// ": keep-alive" comment is sent.
	KeepAlive time.Duration
	// MaxBodyBytes bounds a request body (413 beyond).
	MaxBodyBytes int64
}

// Flags registers the options.
func (o *Options) Flags(fs *flag.FlagSet) {
	fs.StringVar(&o.HTTPAddress, "http-address", "127.0.0.1:8080", "address of the public HTTP API")
	fs.DurationVar(&o.KeepAlive, "keep-alive", 10*time.Second, "longest silence on a stream before a ': keep-alive' comment")
	fs.Int64Var(&o.MaxBodyBytes, "max-body-bytes", 4<<20, "largest request body accepted (413 beyond)")
}

type server struct {
	o         Options
	authz     authzv3.AuthorizationClient
	auth      authv1.AuthServiceClient
	chat      chatv1.ChatServiceClient
	models    modelsv1.ModelsServiceClient
	users     usersv1.UsersServiceClient
	training  trainingv1.TrainingServiceClient
	webhooks  webhooksv1.WebhooksServiceClient
	verifier  *identity.Verifier
	telemetry *platform.Telemetry
	log       interface {
		WarnContext(context.Context, string, ...any)
	}

	requests metric.Int64Counter
	duration metric.Float64Histogram
}

// Setup wires the service: its clients on the mesh and the HTTP server.
func Setup(opts *Options) platform.Setup {
	return func(ctx context.Context, rt *platform.Runtime) error {
		o := *opts
		if o.HTTPAddress == "" {
			o.HTTPAddress = "127.0.0.1:8080"
		}
		if o.KeepAlive <= 0 {
			o.KeepAlive = 10 * time.Second
		}
		if o.MaxBodyBytes <= 0 {
			o.MaxBodyBytes = 4 << 20
		}
		s := &server{o: o, telemetry: rt.Telemetry, log: rt.Log}
		ccs, err := rt.DialAll("auth", "chat", "models", "users", "training", "webhooks")
		if err != nil {
			return err
		}
		authCC, chatCC, modelsCC, usersCC := ccs[0], ccs[1], ccs[2], ccs[3]
		s.training = trainingv1.NewTrainingServiceClient(ccs[4])
		s.webhooks = webhooksv1.NewWebhooksServiceClient(ccs[5])
		s.authz = authzv3.NewAuthorizationClient(authCC)
		s.auth = authv1.NewAuthServiceClient(authCC)
		s.chat = chatv1.NewChatServiceClient(chatCC)
		s.models = modelsv1.NewModelsServiceClient(modelsCC)
		s.users = usersv1.NewUsersServiceClient(usersCC)
		s.verifier = identity.FromAuth(s.auth)
		m := rt.Telemetry.Meter
		if s.requests, err = m.Int64Counter("bulkhead.api.requests", metric.WithDescription("HTTP requests by route and status")); err != nil {
			return err
		}
		if s.duration, err = m.Float64Histogram("bulkhead.api.request.duration", metric.WithUnit("s"),
			metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)); err != nil {
			return err
		}
		addr, err := rt.ServeHTTP(o.HTTPAddress, s.routes())
		if err != nil {
			return err
		}
		rt.Log.Info("public API", "address", "http://"+addr.String())
		return nil
	}
}

// route is one endpoint: its methods and handler.
type route struct {
	name    string
	methods map[string]http.HandlerFunc
}

func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	add := func(pattern, name string, methods map[string]http.HandlerFunc) {
		r := route{name: name, methods: methods}
		mux.Handle(pattern, s.instrument(r))
	}
	// DeepSeek serves both, and its beta features (chat prefix completion)
	// under /beta; here they work on every base URL.
	add("/beta/chat/completions", "chat_completions", map[string]http.HandlerFunc{"POST": s.authenticated(s.chatCompletions)})
	// FIM (prompt + suffix); without a suffix, a plain text completion.
	for _, path := range []string{"/beta/completions", "/v1/completions", "/completions"} {
		add(path, "completions", map[string]http.HandlerFunc{"POST": s.authenticated(s.textCompletions)})
	}
	for _, prefix := range []string{"/v1", ""} {
		add(prefix+"/chat/completions", "chat_completions", map[string]http.HandlerFunc{"POST": s.authenticated(s.chatCompletions)})
		add(prefix+"/models", "models", map[string]http.HandlerFunc{"GET": s.authenticated(s.listModels)})
		add(prefix+"/models/{id...}", "model", map[string]http.HandlerFunc{"GET": s.authenticated(s.getModel)})
	}
	add("/v1/keys", "keys", map[string]http.HandlerFunc{"GET": s.authenticated(s.listKeys), "POST": s.authenticated(s.createKey)})
	add("/v1/keys/{id}", "key", map[string]http.HandlerFunc{"DELETE": s.authenticated(s.revokeKey)})
	add("/v1/files", "files", map[string]http.HandlerFunc{"POST": s.authenticated(s.createFile)})
	add("/v1/files/{id}", "file", map[string]http.HandlerFunc{"GET": s.authenticated(s.getFile)})
	add("/v1/fine_tuning/jobs", "fine_tuning_jobs", map[string]http.HandlerFunc{"GET": s.authenticated(s.listJobs), "POST": s.authenticated(s.createJob)})
	add("/v1/fine_tuning/jobs/{id}", "fine_tuning_job", map[string]http.HandlerFunc{"GET": s.authenticated(s.getJob)})
	add("/v1/fine_tuning/jobs/{id}/cancel", "fine_tuning_job_cancel", map[string]http.HandlerFunc{"POST": s.authenticated(s.cancelJob)})
	add("/v1/fine_tuning/jobs/{id}/events", "fine_tuning_job_events", map[string]http.HandlerFunc{"GET": s.authenticated(s.listJobEvents)})
	add("/v1/fine_tuning/jobs/{id}/checkpoints", "fine_tuning_job_checkpoints", map[string]http.HandlerFunc{"GET": s.authenticated(s.listCheckpoints)})
	// OpenAI's SDKs call them webhook_endpoints.
	for _, base := range []string{"/v1/webhooks", "/v1/webhook_endpoints"} {
		add(base, "webhooks", map[string]http.HandlerFunc{"GET": s.authenticated(s.listWebhooks), "POST": s.authenticated(s.createWebhook)})
		add(base+"/{id}", "webhook", map[string]http.HandlerFunc{"DELETE": s.authenticated(s.deleteWebhook)})
		add(base+"/dead_letters", "webhook_dead_letters", map[string]http.HandlerFunc{"GET": s.authenticated(s.listDeadLetters)})
	}
	add("/v1/usage", "usage", map[string]http.HandlerFunc{"GET": s.authenticated(s.usage)})
	for _, prefix := range []string{"/v1", ""} {
		add(prefix+"/user/balance", "balance", map[string]http.HandlerFunc{"GET": s.authenticated(s.balance)})
	}
	add(JWKSPath, "jwks", map[string]http.HandlerFunc{"GET": s.jwks})
	add("/healthz", "healthz", map[string]http.HandlerFunc{"GET": func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) }})
	mux.Handle("/", s.instrument(route{name: "not_found"}))
	return mux
}

// statusWriter remembers the status for the metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *server) instrument(r route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		t0 := time.Now()
		id := req.Header.Get(platform.RequestIDHeader)
		if !platform.ValidRequestID(id) {
			id = platform.NewRequestID()
		}
		w.Header().Set(platform.RequestIDHeader, id)
		ctx := platform.WithRequestID(req.Context(), id)
		req = req.WithContext(ctx)
		sw := &statusWriter{ResponseWriter: w}
		h, ok := r.methods[req.Method]
		switch {
		case r.methods == nil:
			apierr.NotFound("Unknown endpoint " + req.Method + " " + req.URL.Path).Write(sw)
		case !ok:
			allowed := make([]string, 0, len(r.methods))
			for m := range r.methods {
				allowed = append(allowed, m)
			}
			sw.Header().Set("Allow", strings.Join(allowed, ", "))
			(&apierr.Error{Status: http.StatusMethodNotAllowed, Type: "invalid_request_error", Code: "method_not_allowed",
				Message: "Method " + req.Method + " is not allowed on " + req.URL.Path}).Write(sw)
		default:
			h(sw, req)
		}
		attrs := metric.WithAttributes(attribute.String("route", r.name), attribute.String("status", strconv.Itoa(sw.status)))
		s.requests.Add(ctx, 1, attrs)
		s.duration.Record(ctx, time.Since(t0).Seconds(), attrs)
	})
}

// caller is who is calling, with the token to pass on.
type caller struct {
	id    *authv1.Identity
	token string
}

type authedHandler func(http.ResponseWriter, *http.Request, caller)

// authenticated finds the caller: the identity token a gateway set
// (verified here: it is signed by auth), else the bearer key checked with
// auth's ext_authz Check, exactly as the gateway would.
func (s *server) authenticated(h authedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if tok := r.Header.Get(identity.Header); tok != "" {
			id, err := s.verifier.Verify(ctx, tok, time.Now())
			if err != nil {
				apierr.Unauthorized("Authentication Fails (invalid identity token)").Write(w)
				return
			}
			h(w, r, caller{id: id, token: tok})
			return
		}
		resp, err := s.authz.Check(ctx, &authzv3.CheckRequest{Attributes: &authzv3.AttributeContext{
			Request: &authzv3.AttributeContext_Request{Http: &authzv3.AttributeContext_HttpRequest{
				Method: r.Method, Path: r.URL.Path, Host: r.Host,
				Headers: map[string]string{"authorization": r.Header.Get("Authorization")},
			}},
		}})
		if err != nil {
			apierr.FromGRPC(err).Write(w)
			return
		}
		if d := resp.GetDeniedResponse(); d != nil {
			for _, hv := range d.GetHeaders() {
				w.Header().Set(hv.GetHeader().GetKey(), hv.GetHeader().GetValue())
			}
			w.WriteHeader(int(d.GetStatus().GetCode()))
			w.Write([]byte(d.GetBody()))
			return
		}
		if codes.Code(resp.GetStatus().GetCode()) != codes.OK {
			apierr.Unauthorized("Authentication Fails").Write(w)
			return
		}
		// auth answered over the mesh: its identity headers are the caller's
		// identity (the token is verified by the next hop, chat).
		c := caller{id: &authv1.Identity{}}
		for _, hv := range resp.GetOkResponse().GetHeaders() {
			v := hv.GetHeader().GetValue()
			switch hv.GetHeader().GetKey() {
			case identity.Header:
				c.token = v
			case identity.KeyIDHeader:
				c.id.KeyId = v
			case identity.AccountIDHeader:
				c.id.AccountId = v
			case identity.TierHeader:
				c.id.Tier = v
			case identity.RoleHeader:
				c.id.Role = identity.RoleValue(v)
			}
		}
		if c.token == "" || c.id.AccountId == "" {
			apierr.Internal("auth allowed the request without an identity").Write(w)
			return
		}
		h(w, r, c)
	}
}
