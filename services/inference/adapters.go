package inference

import (
	"context"
	"strings"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bulkhead-mesh/bulkhead/services/inference/ngram"
	trainingv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/training/v1"
)

// FineTunedPrefix starts the engine_model of a fine-tuned builtin model:
// the id of the training job that made it.
const FineTunedPrefix = "ftjob-"

// adapters are the fine-tuned models the builtin engine serves: what a
// training job learnt, fetched once from training (GetAdapter) and added
// to the base corpus's counts; the most recently used are kept.
type adapters struct {
	client trainingv1.TrainingServiceClient
	max    int

	mu      sync.Mutex
	entries map[string]*adapterEntry
	clock   uint64
}

type adapterEntry struct {
	ready chan struct{}
	m     *ngram.Model
	err   error
	used  uint64
}

// DefaultAdapters is how many fine-tuned models a replica keeps loaded.
const DefaultAdapters = 8

func newAdapters(c trainingv1.TrainingServiceClient, max int) *adapters {
	return &adapters{client: c, max: max, entries: map[string]*adapterEntry{}}
}

// model is the fine-tuned model of a job, loaded on first use (callers
// asking meanwhile wait for that load; a failed load is tried again by
// the next request).
func (a *adapters) model(ctx context.Context, job string) (*ngram.Model, error) {
	a.mu.Lock()
	a.clock++
	e, ok := a.entries[job]
	if !ok {
		e = &adapterEntry{ready: make(chan struct{})}
		a.entries[job] = e
		a.evict()
		go a.load(context.WithoutCancel(ctx), job, e)
	}
	e.used = a.clock
	a.mu.Unlock()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-e.ready:
	}
	return e.m, e.err
}

func (a *adapters) load(ctx context.Context, job string, e *adapterEntry) {
	defer close(e.ready)
	resp, err := a.client.GetAdapter(ctx, &trainingv1.GetAdapterRequest{JobId: job})
	if err == nil {
		var c *ngram.Counts
		if c, err = ngram.DecodeCounts(resp.GetAdapter()); err == nil {
			e.m = ngram.TrainWith(ngram.Corpus(), c)
		}
	}
	if err != nil {
		e.err = status.Errorf(status.Code(err), "fine-tuned weights %s: %v", job, err)
		if status.Code(err) == codes.Unknown {
			e.err = status.Errorf(codes.Internal, "fine-tuned weights %s: %v", job, err)
		}
		a.mu.Lock()
		if a.entries[job] == e {
			delete(a.entries, job)
		}
		a.mu.Unlock()
	}
}

// evict drops the least recently used loaded models beyond max.
func (a *adapters) evict() {
	for len(a.entries) > a.max {
		var oldest string
		for k, e := range a.entries {
			if oldest == "" || e.used < a.entries[oldest].used {
				oldest = k
			}
		}
		delete(a.entries, oldest)
	}
}

// fineTuned says whether an engine_model names a fine-tuned model.
func fineTuned(model string) bool { return strings.HasPrefix(model, FineTunedPrefix) }
