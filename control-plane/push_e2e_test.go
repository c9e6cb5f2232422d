package controlplane_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
)

// adsWatcher is a raw state-of-the-world ADS client that subscribes to the
// four types for one Service, ACKs every push and reports each one, so a
// test can see exactly what the control plane pushes.
type adsWatcher struct {
	pushes chan string // type URLs, in arrival order
}

func watchADS(t *testing.T, m *mesh, name string) *adsWatcher {
	t.Helper()
	stream, err := m.adsClient().StreamAggregatedResources(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	node := node("watcher-"+t.Name(), ir.RoleGRPC, "watcher")
	names := map[string][]string{
		resourcev3.ClusterType:  nil, // wildcard
		resourcev3.ListenerType: {name},
		resourcev3.EndpointType: {name},
		resourcev3.RouteType:    {name},
	}
	w := &adsWatcher{pushes: make(chan string, 64)}
	for _, typ := range []string{resourcev3.ClusterType, resourcev3.ListenerType} {
		if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: typ, ResourceNames: names[typ]}); err != nil {
			t.Fatal(err)
		}
	}
	go func() {
		requested := map[string]bool{}
		for {
			resp, err := stream.Recv()
			if err != nil {
				close(w.pushes)
				return
			}
			typ := resp.GetTypeUrl()
			w.pushes <- typ
			_ = stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: typ, ResourceNames: names[typ], VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()})
			next := map[string]string{resourcev3.ClusterType: resourcev3.EndpointType, resourcev3.ListenerType: resourcev3.RouteType}[typ]
			if next != "" && !requested[next] {
				requested[next] = true
				_ = stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: next, ResourceNames: names[next]})
			}
		}
	}()
	return w
}

// drain collects the pushes that arrive within d.
func (w *adsWatcher) drain(d time.Duration) []string {
	var got []string
	deadline := time.After(d)
	for {
		select {
		case typ, ok := <-w.pushes:
			if !ok {
				return got
			}
			got = append(got, typ[strings.LastIndex(typ, ".")+1:])
		case <-deadline:
			return got
		}
	}
}

func TestPushesOnlyWhatChanged(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	m := startMesh(t, map[string]string{
		"echo.yaml":  service("echo", 9000, a),
		"route.yaml": `# routes` + "\n" + fmt.Sprintf(echoRoute, 1, 1),
		"v1.yaml":    service("echo-v1", 9000, a),
		"v2.yaml":    service("echo-v2", 9000, b),
	})
	w := watchADS(t, m, "echo.default:9000")
	if got := w.drain(2 * time.Second); len(got) != 4 {
		t.Fatalf("initial pushes: %v; want one of each of the 4 types", got)
	}

	// An endpoint-only change pushes endpoints and nothing else.
	m.write("echo.yaml", service("echo", 9000, b))
	if got := w.drain(2 * time.Second); strings.Join(got, ",") != "ClusterLoadAssignment" {
		t.Fatalf("after an endpoint-only change, pushed %v; want exactly [ClusterLoadAssignment]", got)
	}

	// A change that translates to the same output pushes nothing.
	before := m.cp.Translations()
	m.write("route.yaml", `# the same routes, another comment`+"\n"+fmt.Sprintf(echoRoute, 1, 1))
	if got := w.drain(2 * time.Second); len(got) != 0 {
		t.Fatalf("after a change with identical output, pushed %v; want nothing", got)
	}
	if m.cp.Translations() == before {
		t.Fatal("the change was not translated at all; the test proves nothing")
	}
}

func TestDebounce(t *testing.T) {
	m := startMesh(t, map[string]string{"echo.yaml": service("echo", 9000)})
	eventually(t, 10*time.Second, "first translation", func() bool { return m.cp.Translations() >= 1 })

	// A burst of 20 writes in a few milliseconds is translated once or twice,
	// not 20 times.
	before := m.cp.Translations()
	for i := range 20 {
		m.write("burst.yaml", fmt.Sprintf("# burst %d\n", i))
	}
	eventually(t, 10*time.Second, "the burst translated", func() bool { return m.cp.Translations() > before })
	time.Sleep(300 * time.Millisecond)
	if n := m.cp.Translations() - before; n > 2 {
		t.Fatalf("a burst of 20 writes caused %d translations; want 1 or 2", n)
	}

	// Changes that never pause are still translated: the delay is bounded
	// (1s by default).
	before = m.cp.Translations()
	stop := time.Now().Add(2500 * time.Millisecond)
	for i := 0; time.Now().Before(stop); i++ {
		m.write("stream.yaml", fmt.Sprintf("# change %d\n", i))
		time.Sleep(30 * time.Millisecond)
	}
	if n := m.cp.Translations() - before; n < 2 {
		t.Fatalf("2.5s of continuous changes caused %d translations during the stream; want at least 2 (bounded delay)", n)
	}
}
