package inference

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bulkhead-mesh/bulkhead/services/platform"
	inferencev1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/inference/v1"
)

// Defaults of a model's passive health when its request carries none.
const (
	defaultConsecutiveFailures = 3
	defaultEjectionTime        = 30 * time.Second
	// keyTTL is how long an upstream's API key read from Vault is reused.
	keyTTL = time.Minute
)

// pool runs the generations of engine openai on a model's upstreams
// (GenerateRequest.upstreams, from its Model object): a weighted random
// choice among the upstreams of the lowest priority that has one neither
// ejected nor full; consecutive failures eject an upstream for a while;
// a call that fails before its first piece is tried on the next choice,
// and a stream cut after it is continued there from what was sent
// (Request.Continuation), so the caller sees one uninterrupted reply.
// When every upstream is ejected, the ejected ones are tried anyway (as
// Envoy's panic threshold does): a stale ejection must not stop traffic.
type pool struct {
	// secret reads an upstream's API key, bound to the hosts of its
	// secret (platform.Runtime.UpstreamKey).
	secret func(ctx context.Context, path, key, baseURL string) (string, error)
	now    func() time.Time

	mu    sync.Mutex
	hosts map[string]*host
	keys  map[string]cachedKey
	rand  *rand.Rand

	calls     metric.Int64Counter
	ejections metric.Int64Counter
	continued metric.Int64Counter
}

// upstreamEngine is the pool as the Engine of one request.
type upstreamEngine struct {
	p      *pool
	ups    []*inferencev1.Upstream
	health *inferencev1.PassiveHealth
}

func (e upstreamEngine) Generate(ctx context.Context, req Request, emit func(Piece) error) (Result, error) {
	return e.p.Generate(ctx, req, e.ups, e.health, emit)
}

type cachedKey struct {
	value string
	until time.Time
}

// host is what one replica knows of one upstream.
type host struct {
	client       *http.Client
	inflight     int
	failures     int // consecutive
	ejectedUntil time.Time
}

func newPool(secret func(ctx context.Context, path, key, baseURL string) (string, error), m metric.Meter) (*pool, error) {
	p := &pool{secret: secret, now: time.Now, hosts: map[string]*host{}, keys: map[string]cachedKey{},
		rand: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x6b62))}
	var err error
	if p.calls, err = m.Int64Counter("bulkhead.inference.upstream_calls", metric.WithDescription("calls to OpenAI-compatible upstreams by upstream and outcome")); err != nil {
		return nil, err
	}
	if p.ejections, err = m.Int64Counter("bulkhead.inference.upstream_ejections", metric.WithDescription("upstreams ejected after consecutive failures")); err != nil {
		return nil, err
	}
	if p.continued, err = m.Int64Counter("bulkhead.inference.upstream_continuations", metric.WithDescription("streams continued on another upstream after theirs failed")); err != nil {
		return nil, err
	}
	return p, nil
}

func hostKey(u *inferencev1.Upstream) string {
	return u.GetName() + "|" + u.GetBaseUrl() + "|" + u.GetModel()
}

// Generate runs req on the upstreams.
func (p *pool) Generate(ctx context.Context, req Request, ups []*inferencev1.Upstream, health *inferencev1.PassiveHealth, emit func(Piece) error) (Result, error) {
	tried := map[string]bool{}
	var failures []string
	// What this call emitted, on top of the continuation it was given.
	var sentReasoning, sentContent strings.Builder
	if c := req.Continuation; c != nil {
		sentReasoning.WriteString(c.GetReasoningContent())
		sentContent.WriteString(c.GetContent())
	}
	// calledTool: a tool call was sent, which no upstream can continue
	// (an assistant prefix is text), so a cut after it is the caller's
	// error.
	emitted, calledTool := false, false
	track := func(piece Piece) error {
		if err := emit(piece); err != nil {
			return err
		}
		emitted = true
		calledTool = calledTool || len(piece.ToolCalls) > 0
		sentReasoning.WriteString(piece.Reasoning)
		sentContent.WriteString(piece.Content)
		return nil
	}
	for {
		u, h, err := p.pick(ups, tried)
		if err != nil {
			if len(failures) > 0 {
				return Result{}, status.Errorf(codes.Unavailable, "openai engine: every upstream failed: %s", strings.Join(failures, "; "))
			}
			return Result{}, err
		}
		tried[hostKey(u)] = true
		eng, err := p.engine(ctx, u, h)
		if err != nil {
			p.done(u, h, health, err)
			failures = append(failures, fmt.Sprintf("%s: %v", u.GetName(), err))
			continue
		}
		r := req
		r.Model = u.GetModel()
		if sentReasoning.Len() > 0 || sentContent.Len() > 0 {
			r.Continuation = &inferencev1.Continuation{ReasoningContent: sentReasoning.String(), Content: sentContent.String()}
		}
		if emitted {
			p.continued.Add(ctx, 1, metric.WithAttributes(attribute.String("upstream", u.GetName())))
		}
		res, err := eng.Generate(ctx, r, track)
		p.done(u, h, health, err)
		if err == nil || ctx.Err() != nil || !failover(err) || calledTool {
			return res, err
		}
		failures = append(failures, fmt.Sprintf("%s: %v", u.GetName(), status.Convert(err).Message()))
		if reason, _, _ := platform.Details(err); reason == reasonKeyRefused {
			p.forgetKey(u) // read it from Vault again next time
		}
	}
}

// failover says whether another upstream may do better: the upstream
// failed, not the request.
func failover(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.ResourceExhausted, codes.Internal, codes.Unknown, codes.DeadlineExceeded:
		return true
	}
	return false
}

// pick chooses an upstream not tried yet and takes one of its slots.
func (p *pool) pick(ups []*inferencev1.Upstream, tried map[string]bool) (*inferencev1.Upstream, *host, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	type cand struct {
		u *inferencev1.Upstream
		h *host
	}
	byPriority := map[int32][]cand{}
	var ejected []cand
	full := 0
	for _, u := range ups {
		k := hostKey(u)
		if tried[k] || u.GetWeight() <= 0 {
			continue
		}
		h := p.hosts[k]
		if h == nil {
			h = &host{client: newUpstreamClient(u)}
			p.hosts[k] = h
		}
		switch {
		case u.GetMaxConcurrency() > 0 && h.inflight >= int(u.GetMaxConcurrency()):
			full++
		case now.Before(h.ejectedUntil):
			ejected = append(ejected, cand{u, h})
		default:
			byPriority[u.GetPriority()] = append(byPriority[u.GetPriority()], cand{u, h})
		}
	}
	prios := make([]int32, 0, len(byPriority))
	for pr := range byPriority {
		prios = append(prios, pr)
	}
	sort.Slice(prios, func(i, j int) bool { return prios[i] < prios[j] })
	var pool []cand
	if len(prios) > 0 {
		pool = byPriority[prios[0]]
	} else {
		pool = ejected // panic: every candidate is ejected
	}
	if len(pool) == 0 {
		if full > 0 {
			return nil, nil, status.Errorf(codes.ResourceExhausted, "openai engine: every upstream is at its maxConcurrency")
		}
		return nil, nil, status.Error(codes.Unavailable, "openai engine: no upstream left to try")
	}
	total := 0
	for _, c := range pool {
		total += int(c.u.GetWeight())
	}
	n := p.rand.IntN(total)
	chosen := pool[len(pool)-1]
	for _, c := range pool {
		if n < int(c.u.GetWeight()) {
			chosen = c
			break
		}
		n -= int(c.u.GetWeight())
	}
	chosen.h.inflight++
	return chosen.u, chosen.h, nil
}

// done gives the slot back and records the outcome: a failure of the
// upstream counts towards its ejection, a success resets the count; the
// caller's own errors (cancelled, a bad request) count for nothing.
func (p *pool) done(u *inferencev1.Upstream, h *host, health *inferencev1.PassiveHealth, err error) {
	outcome := "ok"
	p.mu.Lock()
	h.inflight--
	switch {
	case err == nil:
		h.failures = 0
	case errors.Is(err, context.Canceled) || !failover(err):
		outcome = "caller"
	case p.now().Before(h.ejectedUntil):
		// Calls that were in flight when it was ejected (or made to it in
		// panic) do not eject it again.
		outcome = "failed"
	default:
		outcome = "failed"
		h.failures++
		limit, ejectFor := defaultConsecutiveFailures, defaultEjectionTime
		if n := health.GetConsecutiveFailures(); n > 0 {
			limit = int(n)
		}
		if d := health.GetEjectionTime(); d != nil && d.AsDuration() > 0 {
			ejectFor = d.AsDuration()
		}
		if h.failures >= limit {
			h.failures = 0
			h.ejectedUntil = p.now().Add(ejectFor)
			outcome = "ejected"
		}
	}
	p.mu.Unlock()
	attrs := metric.WithAttributes(attribute.String("upstream", u.GetName()), attribute.String("outcome", outcome))
	p.calls.Add(context.Background(), 1, attrs)
	if outcome == "ejected" {
		p.ejections.Add(context.Background(), 1, metric.WithAttributes(attribute.String("upstream", u.GetName())))
	}
}

// engine is the OpenAI engine of one upstream, its API key read from
// Vault (and kept for keyTTL).
func (p *pool) engine(ctx context.Context, u *inferencev1.Upstream, h *host) (*OpenAI, error) {
	o := &OpenAI{BaseURL: u.GetBaseUrl(), Client: h.client, FirstByte: u.GetFirstTokenTimeout().AsDuration(), Idle: u.GetIdleTimeout().AsDuration()}
	path := u.GetApiKeyVaultPath()
	if path == "" {
		return o, nil
	}
	o.KeySource = fmt.Sprintf("the API key at %s (key %s) in Vault", path, u.GetApiKeyVaultKey())
	k := keyOf(u)
	p.mu.Lock()
	c, ok := p.keys[k]
	p.mu.Unlock()
	if ok && p.now().Before(c.until) {
		o.APIKey = c.value
		return o, nil
	}
	if p.secret == nil {
		return nil, status.Error(codes.Internal, "openai engine: no Vault to read upstream API keys from")
	}
	v, err := p.secret(ctx, path, u.GetApiKeyVaultKey(), u.GetBaseUrl())
	if err != nil {
		return nil, status.Errorf(codes.Internal, "openai engine: upstream %s: API key: %v", u.GetName(), err)
	}
	p.mu.Lock()
	p.keys[k] = cachedKey{value: v, until: p.now().Add(keyTTL)}
	p.mu.Unlock()
	o.APIKey = v
	return o, nil
}

// keyOf names a key as read for one upstream: its secret, and the base
// URL the secret let it go to.
func keyOf(u *inferencev1.Upstream) string {
	return u.GetApiKeyVaultPath() + "#" + u.GetApiKeyVaultKey() + "#" + u.GetBaseUrl()
}

func (p *pool) forgetKey(u *inferencev1.Upstream) {
	p.mu.Lock()
	delete(p.keys, keyOf(u))
	p.mu.Unlock()
}

// newUpstreamClient is the HTTP client of one upstream: its connect
// timeout, connections kept for reuse.
func newUpstreamClient(u *inferencev1.Upstream) *http.Client {
	connect := u.GetConnectTimeout().AsDuration()
	if connect <= 0 {
		connect = 5 * time.Second
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}).DialContext
	t.MaxIdleConnsPerHost = 64
	return &http.Client{Transport: t}
}
