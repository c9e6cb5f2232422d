package platform

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// With --pprof the metrics address serves the profiles beside /metrics.
func TestProfilesBesideMetrics(t *testing.T) {
	metrics := http.NewServeMux()
	metrics.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "up 1\n") })
	srv := httptest.NewServer(withProfiles(metrics))
	defer srv.Close()
	for path, want := range map[string]string{"/metrics": "up 1", "/debug/pprof/": "goroutine", "/debug/pprof/heap?debug=1": "heap profile"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("%s: %s, %.100q", path, resp.Status, b)
		}
	}
}
