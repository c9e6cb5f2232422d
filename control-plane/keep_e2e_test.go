package controlplane_test

import (
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-mesh/bulkhead/control-plane/resource"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
)

// An edit that breaks a policy's CRD rules (as the API server would refuse
// it) keeps the last accepted version in force on the running control
// plane: live traffic keeps its retry, a Service keeps STRICT mTLS, and the
// status says what was refused and that the last version stays.
func TestARefusedEditKeepsTheLastAcceptedVersionLive(t *testing.T) {
	b := startBackend(t, "flaky")
	b.failEvery.Store(2) // every second call fails: only the retry saves them
	secure := `apiVersion: mesh.bulkhead.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: echo}
spec:
  targetRefs: [{group: "", kind: Service, name: users}]
  mtls: {mode: %s}
`
	m := startMesh(t, map[string]string{
		"echo.yaml":     service("echo", 9000, b),
		"users.yaml":    service("users", 9000),
		"policy.yaml":   policy("  retry: {numRetries: 2, retryOn: [unavailable], backoff: {baseInterval: 10ms}}\n"),
		"security.yaml": strings.Replace(secure, "%s", "STRICT", 1),
	})
	c := m.client("echo.default:9000")
	testenv.Eventually(t, 20*time.Second, "every call recovered by a retry", func() error {
		got := outcomes(t, c, 20)
		return testenv.Until(got["backend:flaky"] == 20, "20 calls: %v", got)
	})
	testenv.Eventually(t, 20*time.Second, "users' servers STRICT", func() error {
		r, _ := m.cp.Result()
		return testenv.Until(r != nil && r.Inbound["default/users"].Strict(), "not yet")
	})

	// The bad edits: a negative numRetries, an unknown mtls mode.
	m.write("policy.yaml", policy("  retry: {numRetries: -1, retryOn: [unavailable], backoff: {baseInterval: 10ms}}\n"))
	m.write("security.yaml", strings.Replace(secure, "%s", "STRICTEST", 1))
	testenv.Eventually(t, 20*time.Second, "both edits refused", func() error {
		r, _ := m.cp.Result()
		if r == nil {
			return testenv.Until(false, "no translation")
		}
		for _, kind := range []string{"BackendPolicy", "SecurityPolicy"} {
			o := r.Status.Get(resource.Key{Kind: kind, Namespace: "default", Name: "echo"})
			if o == nil || len(o.Conditions) == 0 || !strings.Contains(o.Conditions[0].Message, "stays in force") {
				return testenv.Until(false, "%s status %+v", kind, o)
			}
		}
		return nil
	})
	r, _ := m.cp.Result()
	bp := r.Status.Get(resource.Key{Kind: "BackendPolicy", Namespace: "default", Name: "echo"}).Conditions[0]
	if bp.Status != "False" || !strings.Contains(bp.Message, "policy.yaml:1 is refused: spec.retry.numRetries") {
		t.Fatalf("the refused BackendPolicy's Accepted: %+v; want False with the file, line and field", bp)
	}
	if !r.Inbound["default/users"].Strict() {
		t.Fatal("an unknown mtls mode in an edit turned users' servers to plaintext")
	}
	// Traffic keeps its retry.
	if got := outcomes(t, c, 20); got["backend:flaky"] != 20 {
		t.Fatalf("after the refused edit: %v; the retry of the last accepted version must stay", got)
	}
	// bulkhead status shows the row (it read nothing for the policy before).
	rep, ok := m.cp.Status()
	found := false
	for _, o := range rep.Objects {
		found = found || (ok && o.Kind == "SecurityPolicy" && o.Name == "echo" && o.Conditions[0].Status == "False")
	}
	if !found {
		t.Fatal("the status report has no row saying the SecurityPolicy's edit was refused")
	}
}
