package controlplane_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/internal/components"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
)

const (
	scalePodsPerSvc  = 5
	scaleClients     = 1000
	scaleTarget      = "svc-0000.default:9000"
	scaleMeasuredPod = "svc-0000"
)

// BenchmarkKubernetesScale: Kubernetes mode at the scale of a real
// cluster. 1,000 Services, each with a Deployment of 5 Pods, go through the
// real Deployment, ReplicaSet and EndpointSlice controllers to a control
// plane running as its own process (`control-plane --kubernetes`, as
// deployed), with 1,000 proxyless clients (ADS streams subscribed as
// grpc-go subscribes) watching one Service.
//
//   - endpoints: a Pod of that Service becomes Ready (its status written
//     to the API server) until all 1,000 clients have ACKed the EDS push;
//   - policy: a BackendPolicy on that Service changes (a merge patch)
//     until all 1,000 clients have ACKed the new route configuration.
//
// Each reports p50 and p99 of the time until the last client ACKed, and
// the control plane's resident memory (and its peak) with the whole
// cluster loaded. Setup takes a few minutes: `make bench-kubernetes`.
// BULKHEAD_SCALE_HEAP_PROFILE=FILE saves the control plane's heap profile
// at the end.
func BenchmarkKubernetesScale(b *testing.B) {
	scaleServices := 1000
	if v := os.Getenv("BULKHEAD_SCALE_SERVICES"); v != "" { // a quicker, smaller run
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("BULKHEAD_SCALE_SERVICES=%q: want a positive number of Services", v)
		}
		scaleServices = n
	}
	k, kc := startKube(b, "deployment", "replicaset", "endpointslice")
	ctx := b.Context()
	var next atomic.Uint32
	ips := sync.Map{}
	node := testenv.StartNode(b, k.Config, testenv.NodeOptions{
		IP:     testenv.HostIP(b).String(),
		Manual: true,
		// No traffic goes to these Pods: each has its own address.
		PodIP: func(p *corev1.Pod) string {
			ip, _ := ips.LoadOrStore(p.UID, func() string {
				n := next.Add(1)
				return fmt.Sprintf("10.%d.%d.%d", 1+n>>16, n>>8&0xff, n&0xff)
			}())
			return ip.(string)
		},
	})
	cfg := rest.CopyConfig(k.Config)
	cfg.QPS, cfg.Burst = 1000, 2000
	cs, err := k8s.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}

	setupStart := time.Now()
	parallel(b, scaleServices, func(i int) error { return createScaleService(ctx, cs, i) })
	b.Logf("setup: %d Services and Deployments created in %s", scaleServices, time.Since(setupStart).Round(time.Second))
	var pods []types.NamespacedName
	testenv.Eventually(b, 10*time.Minute, "every Pod created and bound", func() error {
		list, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{ResourceVersion: "0"})
		if err != nil {
			return err
		}
		pods = pods[:0]
		for _, p := range list.Items {
			if p.Spec.NodeName != "" && p.Status.PodIP != "" {
				pods = append(pods, types.NamespacedName{Namespace: p.Namespace, Name: p.Name})
			}
		}
		return testenv.Until(len(pods) == scaleServices*scalePodsPerSvc, "%d of %d Pods running", len(pods), scaleServices*scalePodsPerSvc)
	})
	b.Logf("setup: %d Pods running at %s", len(pods), time.Since(setupStart).Round(time.Second))
	parallel(b, len(pods), func(i int) error { return node.SetReady(ctx, pods[i].Namespace, pods[i].Name, true) })
	testenv.Eventually(b, 5*time.Minute, "every Pod a ready endpoint", func() error {
		n, err := readyEndpoints(ctx, cs, "")
		if err != nil {
			return err
		}
		return testenv.Until(n == len(pods), "%d of %d ready endpoints", n, len(pods))
	})
	b.Logf("setup: %d ready endpoints at %s", len(pods), time.Since(setupStart).Round(time.Second))

	cp := startControlPlaneProcess(b, k)
	clients := startSimFleet(b, cp.xds, scaleClients, scaleTarget)
	testenv.Eventually(b, 5*time.Minute, "every client's first configuration", func() error {
		return testenv.Until(clients.allAt(3, "") && clients.allAt(1, ""), "not every client has it")
	})
	b.Logf("setup: %d clients in sync at %s", scaleClients, time.Since(setupStart).Round(time.Second))

	// The measured Pod: one of svc-0000's.
	var measured types.NamespacedName
	for _, p := range pods {
		if strings.HasPrefix(p.Name, scaleMeasuredPod+"-") {
			measured = p
			break
		}
	}
	report := func(b *testing.B, samples []time.Duration) {
		reportLatency(b, samples)
		rss, peak := cp.memory(b)
		b.ReportMetric(rss, "cp-rss-MiB")
		b.ReportMetric(peak, "cp-peak-MiB")
	}

	b.Run("endpoints", func(b *testing.B) {
		var samples []time.Duration
		for b.Loop() {
			b.StopTimer()
			clients.converge(b, 3, func() error { return node.SetReady(ctx, measured.Namespace, measured.Name, false) })
			b.StartTimer()
			samples = append(samples, clients.converge(b, 3, func() error { return node.SetReady(ctx, measured.Namespace, measured.Name, true) }))
		}
		report(b, samples)
	})
	b.Run("policy", func(b *testing.B) {
		pol := &v1alpha1.BackendPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "svc-0000"}, Spec: v1alpha1.BackendPolicySpec{
			TargetRefs: []v1alpha1.PolicyTargetReference{{LocalPolicyTargetReference: gwapiv1.LocalPolicyTargetReference{Group: "", Kind: "Service", Name: "svc-0000"}}},
			Retry:      &v1alpha1.Retry{NumRetries: 1, RetryOn: []v1alpha1.RetryOn{"unavailable"}},
		}}
		clients.converge(b, 1, func() error { return kc.Create(ctx, pol) })
		var samples []time.Duration
		for i := 0; b.Loop(); i++ {
			// A merge patch of the field, as kubectl patch sends it: no
			// conflict with the status the control plane writes.
			samples = append(samples, clients.converge(b, 1, func() error {
				patch := fmt.Sprintf(`{"spec":{"retry":{"numRetries":%d}}}`, 2+i%3)
				return kc.Patch(ctx, pol, client.RawPatch(types.MergePatchType, []byte(patch)))
			}))
		}
		report(b, samples)
	})
	if path := os.Getenv("BULKHEAD_SCALE_HEAP_PROFILE"); path != "" {
		cp.saveHeapProfile(b, path)
	}
}

// parallel runs fn for 0..n-1 on 16 workers, failing the benchmark on the
// first error.
func parallel(b *testing.B, n int, fn func(i int) error) {
	b.Helper()
	var (
		wg    sync.WaitGroup
		next  atomic.Int64
		first atomic.Pointer[error]
	)
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || first.Load() != nil {
					return
				}
				if err := fn(i); err != nil {
					first.CompareAndSwap(nil, &err)
				}
			}
		})
	}
	wg.Wait()
	if err := first.Load(); err != nil {
		b.Fatal(*err)
	}
}

func createScaleService(ctx context.Context, cs k8s.Interface, i int) error {
	name := fmt.Sprintf("svc-%04d", i)
	labels := map[string]string{"app": name}
	h2c := "kubernetes.io/h2c"
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{
			{Name: "grpc", Port: 9000, TargetPort: intstr.FromInt32(9000), AppProtocol: &h2c},
		}},
	}
	if _, err := cs.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return err
	}
	replicas := int32(scalePodsPerSvc)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "app", Image: "bulkhead.dev/none",
					Ports: []corev1.ContainerPort{{Name: "grpc", ContainerPort: 9000}},
				}}},
			},
		},
	}
	_, err := cs.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{})
	return err
}

// readyEndpoints counts the distinct ready endpoint addresses of a
// Service's EndpointSlices (every benchmark Service's when service is empty); while
// the controller rebalances, an endpoint may briefly sit in two slices.
func readyEndpoints(ctx context.Context, cs k8s.Interface, service string) (int, error) {
	opts := metav1.ListOptions{ResourceVersion: "0"}
	if service != "" {
		opts.LabelSelector = discoveryv1.LabelServiceName + "=" + service
	}
	slices, err := cs.DiscoveryV1().EndpointSlices("default").List(ctx, opts)
	if err != nil {
		return 0, err
	}
	ready := map[string]bool{}
	for _, s := range slices.Items {
		if s.Labels[discoveryv1.LabelServiceName] == "kubernetes" {
			continue // the API server's own
		}
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && *e.Conditions.Ready {
				for _, a := range e.Addresses {
					ready[a] = true
				}
			}
		}
	}
	return len(ready), nil
}

// cpProcess is the control-plane binary running against the cluster.
type cpProcess struct {
	cmd        *exec.Cmd
	xds, pprof string
}

// startControlPlaneProcess builds and runs `control-plane --kubernetes`
// against k, as it is deployed (its own process, status written back).
func startControlPlaneProcess(b *testing.B, k *components.Kube) *cpProcess {
	b.Helper()
	dir := b.TempDir()
	bin := filepath.Join(dir, "control-plane")
	build := exec.Command("go", "build", "-o", bin, "./cmd/control-plane")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build control-plane: %v\n%s", err, out)
	}
	xds, admin, prof := freeLocalAddr(b), freeLocalAddr(b), freeLocalAddr(b)
	logPath := filepath.Join(dir, "control-plane.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "--kubernetes", "--kubeconfig", k.Kubeconfig, "--xds-address", xds, "--admin-address", admin, "--pprof-address", prof, "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		logFile.Close()
		if b.Failed() {
			out, _ := os.ReadFile(logPath)
			b.Logf("control-plane log:\n%s", out)
		}
	})
	testenv.Eventually(b, time.Minute, "the control plane's xDS port", func() error {
		c, err := net.Dial("tcp", xds)
		if err != nil {
			return err
		}
		return c.Close()
	})
	return &cpProcess{cmd: cmd, xds: xds, pprof: prof}
}

// saveHeapProfile writes the process's heap profile (after a GC) to path,
// for `go tool pprof`.
func (p *cpProcess) saveHeapProfile(b *testing.B, path string) {
	b.Helper()
	resp, err := http.Get("http://" + p.pprof + "/debug/pprof/heap?gc=1")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		b.Fatal(err)
	}
	b.Logf("control plane's heap profile: %s", path)
}

// memory is the process's resident set and its peak, in MiB.
func (p *cpProcess) memory(b *testing.B) (rss, peak float64) {
	b.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, _ := strings.Cut(sc.Text(), ":")
		kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 64)
		switch key {
		case "VmRSS":
			rss = kb / 1024
		case "VmHWM":
			peak = kb / 1024
		}
	}
	return rss, peak
}

func freeLocalAddr(b *testing.B) string {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
