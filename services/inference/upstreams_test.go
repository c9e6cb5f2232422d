package inference

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric/noop"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	inferencev1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/inference/v1"
)

// upstream is an OpenAI-compatible server that answers "ok" or fails
// with 500, counting its calls.
type upstream struct {
	srv   *httptest.Server
	fail  atomic.Bool
	calls atomic.Int64
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.calls.Add(1)
		if u.fail.Load() {
			http.Error(w, `{"error":{"message":"down"}}`, http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"ok\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// The pool's choices on a clock the test moves: consecutive failures
// eject an upstream for exactly its ejection time, failed calls are served
// by the next choice, priority 1 only takes what priority 0 cannot, and a
// full upstream is skipped.
func TestPoolEjectionAndFailover(t *testing.T) {
	a, b, c := newUpstream(t), newUpstream(t), newUpstream(t)
	p, err := newPool(nil, noop.NewMeterProvider().Meter("test"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_000_000, 0)
	p.now = func() time.Time { return now }
	p.rand = rand.New(rand.NewPCG(1, 2))
	ups := []*inferencev1.Upstream{
		{Name: "a", BaseUrl: a.srv.URL, Model: "m", Weight: 3},
		{Name: "b", BaseUrl: b.srv.URL, Model: "m", Weight: 1},
		{Name: "c", BaseUrl: c.srv.URL, Model: "m", Weight: 1, Priority: 1},
	}
	health := &inferencev1.PassiveHealth{ConsecutiveFailures: 2, EjectionTime: durationpb.New(10 * time.Second)}
	call := func() {
		t.Helper()
		res, err := p.Generate(context.Background(), Request{Sampling: &inferencev1.Sampling{}, Messages: []*inferencev1.Message{{Content: "hi"}}}, ups, health, func(Piece) error { return nil })
		if err != nil || res.Finish != inferencev1.FinishReason_FINISH_REASON_STOP {
			t.Fatalf("call: %v %v", res, err)
		}
	}
	calls := func() [3]int64 { return [3]int64{a.calls.Load(), b.calls.Load(), c.calls.Load()} }

	for range 400 {
		call()
	}
	if got := calls(); got[2] != 0 || got[0] < 255 || got[0] > 345 {
		t.Fatalf("calls %v over 400; want about 300:100:0", got)
	}

	a.fail.Store(true)
	before := calls()
	for calls()[0]-before[0] < 2 {
		call() // each failure of a is served by b within the call
	}
	after := calls()
	for range 50 {
		call()
	}
	if got := calls(); got[0] != after[0] || got[1]-after[1] != 50 {
		t.Fatalf("while a is ejected: calls %v (from %v)", got, after)
	}
	now = now.Add(10 * time.Second) // the ejection ends: a is tried again
	a.fail.Store(false)
	for calls()[0] == after[0] {
		call()
	}

	a.fail.Store(true)
	b.fail.Store(true)
	for range 20 {
		call()
	}
	before = calls()
	for range 10 {
		call() // a and b are ejected now: c serves, one call each
	}
	if got := calls(); got[0] != before[0] || got[1] != before[1] || got[2]-before[2] != 10 {
		t.Fatalf("with priority 0 ejected: calls %v (from %v)", got, before)
	}

	// Every upstream at its maxConcurrency: RESOURCE_EXHAUSTED, at once.
	full := []*inferencev1.Upstream{{Name: "f", BaseUrl: a.srv.URL, Model: "m", Weight: 1, MaxConcurrency: 1}}
	u, h, err := p.pick(full, map[string]bool{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.pick(full, map[string]bool{}); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a full upstream: %v", err)
	}
	p.done(u, h, nil, nil)
	if _, _, err := p.pick(full, map[string]bool{}); err != nil {
		t.Fatalf("after its slot came back: %v", err)
	}
}
