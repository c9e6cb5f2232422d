package controlplane_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
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
	node := node("watcher-"+t.Name(), workload.RoleGRPC, "watcher")
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

// take returns the pushes received so far (short type names, in order).
func (w *adsWatcher) take() []string {
	var got []string
	for {
		select {
		case typ, ok := <-w.pushes:
			if !ok {
				return got
			}
			got = append(got, typ[strings.LastIndex(typ, ".")+1:])
		default:
			return got
		}
	}
}

// watcherProxy is the identity watchADS connects as.
const watcherProxy = "grpc/default/watcher"

// published is what the control plane last published to a proxy, per
// type (nil before anything was).
func published(m *mesh, proxy string) map[string]string {
	rep, _ := m.cp.Status()
	for _, p := range rep.Proxies {
		if p.Proxy == proxy {
			return p.Published
		}
	}
	return nil
}

// waitSynced waits until something other than prev is published to proxy
// and its one node has ACKed it for all four types: every push of that
// publication has then been received (the watcher ACKs as it receives).
func waitSynced(t *testing.T, m *mesh, proxy string, prev map[string]string) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, "the watcher in sync with a new publication", func() error {
		rep, _ := m.cp.Status()
		for _, p := range rep.Proxies {
			if p.Proxy != proxy {
				continue
			}
			if p.Published == nil || maps.Equal(p.Published, prev) {
				return fmt.Errorf("published %v, as before", p.Published)
			}
			if len(p.Nodes) != 1 || !p.Nodes[0].InSync || len(p.Nodes[0].Types) != 4 {
				return fmt.Errorf("nodes %+v; want one, in sync on 4 types", p.Nodes)
			}
			return nil
		}
		return fmt.Errorf("no node of %s connected", proxy)
	})
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
	waitSynced(t, m, watcherProxy, nil)
	got := w.take()
	slices.Sort(got)
	if strings.Join(got, ",") != "Cluster,ClusterLoadAssignment,Listener,RouteConfiguration" {
		t.Fatalf("initial pushes: %v; want one of each of the 4 types", got)
	}

	// An endpoint-only change pushes endpoints and nothing else.
	before := published(m, watcherProxy)
	m.write("echo.yaml", service("echo", 9000, b))
	waitSynced(t, m, watcherProxy, before)
	if got := w.take(); strings.Join(got, ",") != "ClusterLoadAssignment" {
		t.Fatalf("after an endpoint-only change, pushed %v; want exactly [ClusterLoadAssignment]", got)
	}

	// A change that translates to the same output pushes nothing: once it
	// is translated, another endpoint change is the barrier, and the pushes
	// up to it are that change's alone.
	before = published(m, watcherProxy)
	prev, _ := m.cp.Result()
	m.write("route.yaml", `# the same routes, another comment`+"\n"+fmt.Sprintf(echoRoute, 1, 1))
	testenv.Eventually(t, 20*time.Second, "the identical change translated", func() error {
		r, _ := m.cp.Result()
		return testenv.Until(r != prev, "not yet")
	})
	if now := published(m, watcherProxy); !maps.Equal(now, before) {
		t.Fatalf("identical output published new versions: %v, before %v", now, before)
	}
	m.write("echo.yaml", service("echo", 9000, a))
	waitSynced(t, m, watcherProxy, before)
	if got := w.take(); strings.Join(got, ",") != "ClusterLoadAssignment" {
		t.Fatalf("after a change with identical output and an endpoint change, pushed %v; want exactly [ClusterLoadAssignment]", got)
	}
}

// The control plane's debouncing, end to end (debounce_test.go proves its
// logic on a fake clock): a burst of writes is folded, and changes that
// never pause are still translated.
func TestDebounce(t *testing.T) {
	m := startMesh(t, map[string]string{"echo.yaml": service("echo", 9000)})
	hasCluster := func(name string) func() error {
		return func() error {
			r, _ := m.cp.Result()
			if r == nil {
				return fmt.Errorf("nothing translated yet")
			}
			for _, c := range r.Clusters {
				if c.Name == name {
					return nil
				}
			}
			return fmt.Errorf("no cluster %s yet", name)
		}
	}
	testenv.Eventually(t, 20*time.Second, "first translation", hasCluster("echo.default:9000"))

	// A burst of 20 writes in a few milliseconds: its last write is
	// translated, in fewer translations than writes.
	before := m.cp.Translations()
	for i := range 20 {
		m.write("burst.yaml", service("burst", 9100+i))
	}
	testenv.Eventually(t, 20*time.Second, "the burst's last write translated", hasCluster("burst.default:9119"))
	if n := m.cp.Translations() - before; n >= 20 {
		t.Fatalf("a burst of 20 writes caused %d translations; the debounce folded nothing", n)
	}

	// Changes that never pause (one every 30 ms, under the 100 ms quiet
	// time) are still translated, twice, while they go on: the delay is
	// bounded (1 s by default).
	before = m.cp.Translations()
	stop := make(chan struct{})
	writeErr := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				writeErr <- nil
				return
			case <-time.After(30 * time.Millisecond):
				if err := m.tryWrite("stream.yaml", fmt.Sprintf("# change %d\n", i)); err != nil {
					writeErr <- err
					return
				}
			}
		}
	}()
	testenv.Eventually(t, 30*time.Second, "two translations during a stream of changes", func() error {
		return testenv.Until(m.cp.Translations()-before >= 2, "%d translations so far", m.cp.Translations()-before)
	})
	close(stop)
	if err := <-writeErr; err != nil {
		t.Fatal(err)
	}
}
