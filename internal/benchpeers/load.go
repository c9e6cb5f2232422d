package benchpeers

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// body is the request every target gets: model "bench", a short prompt,
// 16 tokens at most.
func body(stream bool) []byte {
	return fmt.Appendf(nil, `{"model":"bench","messages":[{"role":"user","content":"Say something about light."}],"max_tokens":16,"stream":%t}`, stream)
}

// post sends one request and checks it succeeded.
func post(t *Target, stream bool) error {
	req, _ := http.NewRequest("POST", t.URL, bytes.NewReader(body(stream)))
	req.Header = t.Header.Clone()
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(b, []byte("violet")) {
		return fmt.Errorf("POST %s: %s %.300s", t.URL, resp.Status, b)
	}
	return nil
}

// Result is one target at one rate.
type Result struct {
	Target        string
	Rate          int
	Stream        bool
	Requests      int
	Errors        int
	FirstError    string
	P50, P99, Max time.Duration
	// TTFT: request sent to the first content chunk read (streams).
	TTFTP50, TTFTP99 time.Duration
	// CPU seconds of the target's processes per 1,000 requests, and their
	// resident memory at the end.
	CPUPer1000 float64
	RSS        int64
}

// Held says whether the rate was held: no errors and p99 under 50 ms.
func (r Result) Held() bool { return r.Errors == 0 && r.P99 < 50*time.Millisecond }

// firstContent times each response to its first chunk that carries
// content (the first "content" in an SSE stream).
type firstContent struct {
	base http.RoundTripper
	mu   sync.Mutex
	ttft []time.Duration
}

func (f *firstContent) RoundTrip(req *http.Request) (*http.Response, error) {
	t0 := time.Now()
	resp, err := f.base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	resp.Body = &watch{ReadCloser: resp.Body, f: f, t0: t0}
	return resp, nil
}

type watch struct {
	io.ReadCloser
	f    *firstContent
	t0   time.Time
	seen bool
}

func (w *watch) Read(p []byte) (int, error) {
	n, err := w.ReadCloser.Read(p)
	if !w.seen && bytes.Contains(p[:n], []byte(`"content"`)) {
		w.seen = true
		d := time.Since(w.t0)
		w.f.mu.Lock()
		w.f.ttft = append(w.f.ttft, d)
		w.f.mu.Unlock()
	}
	return n, err
}

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// Warm sends rate requests per second for d, unmeasured: connections
// made, caches and pools filled, the target settled after its start.
func Warm(t *Target, rate int, d time.Duration) {
	atk := vegeta.NewAttacker(vegeta.MaxWorkers(1024))
	tgt := vegeta.Target{Method: "POST", URL: t.URL, Body: body(false), Header: t.Header.Clone()}
	tgt.Header.Set("Content-Type", "application/json")
	for range atk.Attack(vegeta.NewStaticTargeter(tgt), vegeta.Rate{Freq: rate, Per: time.Second}, d, "warm") {
	}
}

// Measure sends rate requests per second for d, open loop, and measures.
func Measure(t *Target, rate int, d time.Duration, stream bool) Result {
	fc := &firstContent{base: &http.Transport{MaxIdleConnsPerHost: 10000, MaxConnsPerHost: 0, IdleConnTimeout: 30 * time.Second}}
	atk := vegeta.NewAttacker(vegeta.Client(&http.Client{Transport: fc, Timeout: 10 * time.Second}), vegeta.MaxWorkers(4096))
	tgt := vegeta.Target{Method: "POST", URL: t.URL, Body: body(stream), Header: t.Header.Clone()}
	tgt.Header.Set("Content-Type", "application/json")
	pids := t.Pids()
	cpu0 := cpuSeconds(pids)
	var m vegeta.Metrics
	res := Result{Target: t.Name, Rate: rate, Stream: stream}
	for r := range atk.Attack(vegeta.NewStaticTargeter(tgt), vegeta.Rate{Freq: rate, Per: time.Second}, d, t.Name) {
		m.Add(r)
		res.Requests++
		if r.Code != 200 || r.Error != "" {
			res.Errors++
			if res.FirstError == "" {
				res.FirstError = fmt.Sprintf("%d %s %.200s", r.Code, r.Error, r.Body)
			}
		}
	}
	m.Close()
	cpu := cpuSeconds(pids) - cpu0
	res.P50, res.P99, res.Max = m.Latencies.P50, m.Latencies.P99, m.Latencies.Max
	res.CPUPer1000 = cpu / float64(max(res.Requests, 1)) * 1000
	res.RSS = rssBytes(t.Pids())
	if stream {
		res.TTFTP50, res.TTFTP99 = quantile(fc.ttft, 0.5), quantile(fc.ttft, 0.99)
	}
	return res
}
