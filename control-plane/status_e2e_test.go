package controlplane_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	cpstatus "github.com/bulkhead-mesh/bulkhead/control-plane/status"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
)

func getStatus(t *testing.T, m *mesh) cpstatus.Report {
	t.Helper()
	resp, err := http.Get("http://" + m.cp.AdminAddr() + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rep cpstatus.Report
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

func programmed(rep cpstatus.Report, kind, name string) string {
	for _, o := range rep.Objects {
		if o.Kind == kind && o.Name == name {
			for _, c := range o.Conditions {
				if c.Type == "Programmed" {
					return c.Status + " " + c.Reason + ": " + c.Message
				}
			}
		}
	}
	return "missing"
}

// Programmed follows what the proxies did: True once the connected client
// ACKed, False with the proxy's own words when one NACKs.
func TestStatusProgrammedAndNACK(t *testing.T) {
	m, _, _ := startEchoMesh(t, 50, 50)
	testenv.Eventually(t, 10*time.Second, "first translation", func() error {
		resp, err := http.Get("http://" + m.cp.AdminAddr() + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return testenv.Until(resp.StatusCode == 200, "/healthz: %s", resp.Status)
	})
	if got := programmed(getStatus(t, m), "GRPCRoute", "echo"); !strings.HasPrefix(got, "False NoProxyConnected") {
		t.Fatalf("before any proxy connects: Programmed = %s", got)
	}
	c := m.client("echo.default:9000")
	count(t, c, 2)
	testenv.Eventually(t, 10*time.Second, "Programmed True after the client ACKed", func() error {
		got := programmed(getStatus(t, m), "GRPCRoute", "echo")
		return testenv.Until(strings.HasPrefix(got, "True Programmed"), "Programmed = %s", got)
	})

	// A proxy that rejects the listeners it is sent (here a raw ADS client
	// answering with error_detail) turns Programmed False with its message.
	m.nack("picky-node", resourcev3.ListenerType, []string{"echo.default:9000"}, "listener echo.default:9000: unsupported filter")
	testenv.Eventually(t, 10*time.Second, "Programmed False after the NACK", func() error {
		got := programmed(getStatus(t, m), "GRPCRoute", "echo")
		return testenv.Until(strings.HasPrefix(got, "False RejectedByProxy") && strings.Contains(got, "picky-node") && strings.Contains(got, "unsupported filter"), "Programmed = %s", got)
	})

	// /nodes shows both nodes and what each did.
	r, err := http.Get("http://" + m.cp.AdminAddr() + "/nodes")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if !strings.Contains(string(body), `"nodeID": "picky-node"`) || !strings.Contains(string(body), `"nackError": "listener echo.default:9000: unsupported filter"`) {
		t.Fatalf("/nodes:\n%s", body)
	}

	// The config dump shows what the proxy was sent.
	r, err = http.Get("http://" + m.cp.AdminAddr() + "/config_dump?proxy=grpc/default/caller&format=yaml")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != 200 || !strings.Contains(string(body), "name: echo.default:9000") {
		t.Fatalf("config dump (%d):\n%s", r.StatusCode, body)
	}
}

// A node that does not say who it is gets no configuration.
func TestNodeWithoutIdentityIsRefused(t *testing.T) {
	m := startMesh(t, map[string]string{"echo.yaml": service("echo", 9000)})
	stream, err := m.adsClient().StreamAggregatedResources(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "anonymous"}, TypeUrl: resourcev3.ListenerType}); err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	if err == nil || !strings.Contains(err.Error(), `metadata has no "bulkhead" struct`) {
		t.Fatalf("stream of a node without identity: %v; want it refused with the reason", err)
	}
}
