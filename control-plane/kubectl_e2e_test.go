package controlplane_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/status"

	controlplane "github.com/bulkhead-mesh/bulkhead/control-plane"
	"github.com/bulkhead-mesh/bulkhead/control-plane/provider/kubernetes"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
)

// echoWorkload is the SRE's YAML: a Service whose Pods come from two
// Deployments (two versions, each Pod on the node's network at its own
// port, with a readiness probe), as kubectl applies it.
const echoWorkload = `
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec:
  selector: {app: echo}
  ports:
  - {name: grpc, port: 9000, targetPort: grpc, appProtocol: kubernetes.io/h2c}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo-a, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: echo, version: a}}
  template:
    metadata: {labels: {app: echo, version: a}}
    spec:
      hostNetwork: true
      containers:
      - name: echo
        image: bulkhead.dev/echo
        ports: [{name: grpc, containerPort: %d}]
        readinessProbe: {tcpSocket: {port: grpc}, periodSeconds: 1}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo-b, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: echo, version: b}}
  template:
    metadata: {labels: {app: echo, version: b}}
    spec:
      hostNetwork: true
      containers:
      - name: echo
        image: bulkhead.dev/echo
        ports: [{name: grpc, containerPort: %d}]
        readinessProbe: {tcpSocket: {port: grpc}, periodSeconds: 1}
`

// The control plane's ServiceAccount and RBAC, as deployed.
const (
	controlPlaneRBAC    = "../deploy/kind/base/control-plane/rbac.yaml"
	controlPlaneAccount = "system:serviceaccount:bulkhead-system:bulkhead-control-plane"
)

const echoRetry = `
apiVersion: mesh.bulkhead.dev/v1alpha1
kind: BackendPolicy
metadata: {name: echo, namespace: default}
spec:
  targetRefs: [{group: "", kind: Service, name: echo}]
  retry: {numRetries: 2, retryOn: [unavailable]}
`

// The SRE's workflow with kubectl against a cluster whose Deployment,
// ReplicaSet and EndpointSlice controllers really run: the workload
// applied, live proxyless traffic reaches both versions; a retry applied
// with kubectl recovers the calls a flaky backend fails and
// `kubectl get backendpolicies` shows it Accepted and Programmed; kubectl
// describe shows the ancestors; kubectl delete takes it away; a Pod
// deleted leaves EDS before its backend stops, with zero failed calls. The
// control plane runs as its ServiceAccount with the manifest's RBAC.
func TestKubectlWorkflow(t *testing.T) {
	k, _ := startKube(t, "deployment", "replicaset", "endpointslice")
	ctx := t.Context()
	host := testenv.HostIP(t).String()
	testenv.StartNode(t, k.Config, testenv.NodeOptions{IP: host})
	a, b := startBackendOn(t, "a", host), startBackendOn(t, "b", host)
	a.failEvery.Store(2)
	b.failEvery.Store(2)

	kubectl := func(stdin string, args ...string) string {
		t.Helper()
		out, err := k.Kubectl(ctx, stdin, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	// The control plane runs as it is deployed: as its ServiceAccount,
	// with only the RBAC of its manifest, electing itself with its Lease.
	kubectl("", "apply", "-f", controlPlaneRBAC)
	for _, denied := range []string{"get secrets", "list pods", "update services", "patch backendpolicies.mesh.bulkhead.dev", "create leases -n default", "list configmaps -n default"} {
		out, _ := k.Kubectl(ctx, "", append([]string{"auth", "can-i", "--as", controlPlaneAccount}, strings.Fields(denied)...)...)
		if strings.TrimSpace(out) != "no" {
			t.Fatalf("kubectl auth can-i %s as the control plane: %q; want no (least privilege)", denied, out)
		}
	}
	sa, err := k.ServiceAccountConfig(ctx, "bulkhead-system", "bulkhead-control-plane")
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kubernetes.NewClient(sa)
	if err != nil {
		t.Fatal(err)
	}
	opts := kubeOptions(t, sa, kc)
	opts.Leader = &controlplane.LeaderElection{Config: sa, Namespace: "bulkhead-system"}
	cp := startControlPlane(t, opts)
	testenv.Eventually(t, 30*time.Second, "the control plane leads with its Lease", func() error { return testenv.Until(cp.Leading(), "not yet") })
	testenv.Eventually(t, 30*time.Second, "its proxies' state shared in its ConfigMap", func() error {
		out := kubectl("", "get", "configmaps", "-n", "bulkhead-system", "-l", "app.kubernetes.io/component=control-plane-nodes", "-o", "name")
		return testenv.Until(strings.HasPrefix(out, "configmap/bulkhead-control-plane-nodes-"), "kubectl get configmaps printed %q", out)
	})
	m := &mesh{t: t, cp: cp}

	out := kubectl(fmt.Sprintf(echoWorkload, a.addr.Port, b.addr.Port), "apply", "-f", "-")
	for _, want := range []string{"service/echo created", "deployment.apps/echo-a created", "deployment.apps/echo-b created"} {
		if !strings.Contains(out, want) {
			t.Fatalf("kubectl apply printed %q; want %q", out, want)
		}
	}
	c := m.client("echo.default:9000")
	testenv.Eventually(t, 60*time.Second, "calls reach both versions, some failing", func() error {
		got := outcomes(t, c, 40)
		return testenv.Until(got["backend:a"] > 0 && got["backend:b"] > 0 && got["Unavailable"] > 0, "40 calls: %v", got)
	})

	// The retry, applied with kubectl, changes live traffic and is
	// Programmed once the client ACKed it.
	if out := kubectl(echoRetry, "apply", "-f", "-"); !strings.Contains(out, "backendpolicy.mesh.bulkhead.dev/echo created") {
		t.Fatalf("kubectl apply printed %q", out)
	}
	testenv.Eventually(t, 30*time.Second, "every call recovered by the retry", func() error {
		got := outcomes(t, c, 20)
		return testenv.Until(got["backend:a"]+got["backend:b"] == 20, "20 calls: %v", got)
	})
	testenv.Eventually(t, 30*time.Second, "kubectl get backendpolicies: Accepted and Programmed", func() error {
		out := kubectl("", "get", "backendpolicies", "-n", "default")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 {
			return testenv.Until(false, "kubectl get printed %q", out)
		}
		head, row := strings.Fields(lines[0]), strings.Fields(lines[1])
		return testenv.Until(strings.Join(head, " ") == "NAME ACCEPTED PROGRAMMED AGE" && len(row) == 4 && row[0] == "echo" && row[1] == "True" && row[2] == "True",
			"kubectl get printed %q", out)
	})
	desc := strings.Join(strings.Fields(kubectl("", "describe", "backendpolicy", "echo", "-n", "default")), " ")
	for _, want := range []string{
		"Ancestor Ref: Group: Kind: Service Name: echo Namespace: default",
		"Observed Generation: 1 Reason: Accepted Status: True Type: Accepted",
		"Message: applied by every connected node of grpc/default/caller Observed Generation: 1 Reason: Programmed Status: True Type: Programmed",
		"Controller Name: " + kubernetes.ControllerName,
		"Num Retries: 2",
	} {
		if !strings.Contains(desc, want) {
			t.Fatalf("kubectl describe lacks %q:\n%s", want, desc)
		}
	}

	// Bad input. Admission refuses what breaks the CRD's rules, naming the
	// field; a policy that passes admission but targets a Service that
	// does not exist is stored, reported Accepted=False, and changes
	// nothing for live traffic.
	if _, err := k.Kubectl(ctx, strings.Replace(echoRetry, "numRetries: 2", "numRetries: -1", 1), "apply", "-f", "-"); err == nil ||
		!strings.Contains(err.Error(), "spec.retry.numRetries") || !strings.Contains(err.Error(), "should be greater than or equal to 0") {
		t.Fatalf("kubectl apply of numRetries -1: %v; want refused naming spec.retry.numRetries", err)
	}
	orphan := strings.NewReplacer("name: echo, namespace", "name: orphan, namespace", "name: echo}]", "name: nosuch}]").Replace(echoRetry)
	kubectl(orphan, "apply", "-f", "-")
	testenv.Eventually(t, 30*time.Second, "the orphan policy Accepted=False, naming the missing Service", func() error {
		out := kubectl("", "get", "backendpolicy", "orphan", "-n", "default", "-o", `jsonpath={.status.ancestors[0].conditions[?(@.type=="Accepted")]}`)
		return testenv.Until(strings.Contains(out, `"status":"False"`) && strings.Contains(out, "nosuch"), "Accepted %s", out)
	})
	if got := outcomes(t, c, 20); got["backend:a"]+got["backend:b"] != 20 {
		t.Fatalf("after the orphan policy, 20 calls: %v; want all served (the retry still in force)", got)
	}
	kubectl("", "delete", "backendpolicy", "orphan", "-n", "default")

	// Healthy backends, and the retry deleted with kubectl: no call is
	// retried from now on, so none may fail.
	a.failEvery.Store(0)
	b.failEvery.Store(0)
	if out := kubectl("", "delete", "backendpolicy", "echo", "-n", "default"); !strings.Contains(out, `backendpolicy.mesh.bulkhead.dev "echo" deleted`) {
		t.Fatalf("kubectl delete printed %q", out)
	}
	testenv.Eventually(t, 30*time.Second, "the BackendPolicy gone from the status model", func() error {
		rep, _ := cp.Status()
		for _, o := range rep.Objects {
			if o.Kind == "BackendPolicy" {
				return testenv.Until(false, "still reported: %+v", o)
			}
		}
		return nil
	})

	// A Pod deleted while traffic flows.
	pod := strings.TrimPrefix(kubectl("", "get", "pods", "-n", "default", "-l", "version=a", "-o", "name"), "pod/")
	pod = strings.TrimSpace(pod)
	if pod == "" || strings.Contains(pod, "\n") {
		t.Fatalf("pods of echo-a: %q; want one", pod)
	}
	var (
		mu       sync.Mutex
		served   = map[string]int{}
		failures []string
	)
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for loadCtx.Err() == nil {
			callCtx, cancel := context.WithTimeout(loadCtx, 5*time.Second)
			got, err := call(callCtx, c)
			cancel()
			mu.Lock()
			switch {
			case err == nil:
				served[got]++
			case loadCtx.Err() == nil:
				failures = append(failures, status.Convert(err).String())
			}
			mu.Unlock()
		}
	})
	snapshot := func() (map[string]int, []string) {
		mu.Lock()
		defer mu.Unlock()
		s := map[string]int{}
		for k, v := range served {
			s[k] = v
		}
		return s, append([]string(nil), failures...)
	}
	testenv.Eventually(t, 10*time.Second, "traffic on both versions before the delete", func() error {
		s, _ := snapshot()
		return testenv.Until(s["a"] > 5 && s["b"] > 5, "served %v", s)
	})
	kubectl("", "delete", "pod", pod, "-n", "default", "--wait=false")
	// The Pod terminates: its endpoint drains, so a's calls stop while it
	// still listens.
	var before int
	testenv.Eventually(t, 30*time.Second, "no call reaches the deleted Pod", func() error {
		s, _ := snapshot()
		n := a.calls.Load()
		time.Sleep(300 * time.Millisecond)
		if a.calls.Load() != n {
			return testenv.Until(false, "a still serving (served %v)", s)
		}
		before = s["b"]
		return nil
	})
	// Its container stops; the kubelet removes the Pod, and its
	// replacement never becomes ready (nothing listens at a's port).
	a.srv.GracefulStop()
	testenv.Eventually(t, 30*time.Second, "the deleted Pod gone", func() error {
		out, err := k.Kubectl(ctx, "", "get", "pod", pod, "-n", "default", "--ignore-not-found", "-o", "name")
		if err != nil {
			return err
		}
		return testenv.Until(strings.TrimSpace(out) == "", "still there: %q", out)
	})
	testenv.Eventually(t, 10*time.Second, "traffic continues on b", func() error {
		s, _ := snapshot()
		return testenv.Until(s["b"] > before+20, "served %v", s)
	})
	stopLoad()
	wg.Wait()
	s, failed := snapshot()
	if len(failed) > 0 {
		t.Fatalf("%d calls failed while a Pod was deleted (served %v); first: %s", len(failed), s, failed[0])
	}
	t.Logf("served %v, zero failed calls", s)
}
