package testenv

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// HostIP is an IPv4 address of this machine that an EndpointSlice may carry
// (the API server refuses loopback and link-local ones), for Pods whose
// backends are the test's own listeners.
func HostIP(t testing.TB) net.IP {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP
		}
	}
	t.Fatal("testenv: this machine has no non-loopback IPv4 address for an EndpointSlice to carry")
	return nil
}

// NodeOptions configures StartNode.
type NodeOptions struct {
	// Name of the Node object; "node-1" when empty.
	Name string
	// IP is the Node's InternalIP and every Pod's IP: the Pods share the
	// node's network, as hostNetwork Pods do, so a Pod's containerPort is
	// where the test's real backend listens.
	IP string
	// PodIP, when set, gives each Pod its own IP instead (for Pods that no
	// test reaches, as in a scale benchmark).
	PodIP func(*corev1.Pod) string
	// Manual: a Pod becomes Ready only when SetReady says so.
	Manual bool
}

// Node plays, through the API, the parts of a scheduler and a kubelet that
// controllers observe, for a cluster whose Pods run no containers: it
// registers a Node, binds every unscheduled Pod to it (pods/binding) unless
// another Pod there holds a host port it asks for, and
// reports each bound Pod Running with its IP (pods/status). A Pod is Ready
// once running unless it has a tcpSocket readiness probe, which the Node
// then runs against the Pod's IP, as a kubelet would, every 200 ms; a Pod
// being deleted is removed once its probe fails (the test stopped its
// backend) or at once when it has none. So the real ReplicaSet and
// EndpointSlice controllers see Pods come, become ready and go as in a
// cluster.
type Node struct {
	Name string
	IP   string

	opts   NodeOptions
	cs     kubernetes.Interface
	pods   corelisters.PodLister
	queue  chan string
	mu     sync.Mutex
	manual map[string]bool // namespace/name → Ready, with opts.Manual
	bindMu sync.Mutex
	bound  map[types.UID]string // Pods bound here, before the informer shows it
	errs   chan error
}

// StartNode registers a Node and runs it until the test ends.
func StartNode(t testing.TB, cfg *rest.Config, opts NodeOptions) *Node {
	t.Helper()
	if opts.Name == "" {
		opts.Name = "node-1"
	}
	if net.ParseIP(opts.IP) == nil {
		t.Fatalf("testenv.StartNode: IP %q is not an IP address", opts.IP)
	}
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst = 1000, 2000
	cs, err := kubernetes.NewForConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{Name: opts.Name, IP: opts.IP, opts: opts, cs: cs, queue: make(chan string, 100000), manual: map[string]bool{}, bound: map[types.UID]string{}, errs: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: opts.Name, Labels: map[string]string{"kubernetes.io/hostname": opts.Name}},
	}
	if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatalf("testenv.StartNode: create Node: %v", err)
	}
	node.Status = corev1.NodeStatus{
		Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: opts.IP}, {Type: corev1.NodeHostName, Address: opts.Name}},
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}},
	}
	if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("testenv.StartNode: Node status: %v", err)
	}
	factory := informers.NewSharedInformerFactory(cs, 0)
	inf := factory.Core().V1().Pods()
	n.pods = inf.Lister()
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			n.queue <- key
		}
	}
	_, _ = inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
	})
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { n.work(ctx) })
	}
	wg.Go(func() { n.probeLoop(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		select {
		case err := <-n.errs:
			t.Errorf("testenv: node %s: %v", n.Name, err)
		default:
		}
	})
	return n
}

// SetReady reports a Pod Ready or not (NodeOptions.Manual) and returns once
// the API server has stored it.
func (n *Node) SetReady(ctx context.Context, namespace, name string, ready bool) error {
	key := namespace + "/" + name
	n.mu.Lock()
	n.manual[key] = ready
	n.mu.Unlock()
	return n.sync(ctx, key)
}

func (n *Node) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case key := <-n.queue:
			if err := n.sync(ctx, key); err != nil && ctx.Err() == nil {
				if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
					continue // a newer version is queued, or it is gone
				}
				select {
				case n.errs <- fmt.Errorf("pod %s: %w", key, err):
				default:
				}
			}
		}
	}
}

// probeLoop re-examines the Pods that have a readiness probe.
func (n *Node) probeLoop(ctx context.Context) {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		pods, _ := n.pods.List(labels.Everything())
		for _, p := range pods {
			if p.Spec.NodeName == "" || (p.Spec.NodeName == n.Name && tcpProbe(p) != nil) {
				n.queue <- p.Namespace + "/" + p.Name
			}
		}
	}
}

func (n *Node) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return err
	}
	pod, err := n.pods.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		// Not in the cache yet (SetReady right after a create): ask.
		pod, err = n.cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	}
	if err != nil {
		return err
	}
	switch {
	case pod.Spec.NodeName == "" && pod.DeletionTimestamp == nil:
		if n.portsTaken(pod) {
			return nil // unschedulable for now; the probe loop asks again
		}
		err := n.cs.CoreV1().Pods(ns).Bind(ctx, &corev1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: pod.UID},
			Target:     corev1.ObjectReference{Kind: "Node", Name: n.Name},
		}, metav1.CreateOptions{})
		if err != nil {
			n.bindMu.Lock()
			delete(n.bound, pod.UID)
			n.bindMu.Unlock()
		}
		return err
	case pod.Spec.NodeName != n.Name:
		return nil
	case pod.DeletionTimestamp != nil:
		// The kubelet removes a Pod once its containers have stopped.
		if n.alive(pod) {
			return nil
		}
		zero := int64(0)
		return n.cs.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &pod.UID}})
	}
	ready := n.ready(key, pod)
	want := n.status(pod, ready)
	if statusEqual(pod.Status, want) {
		return nil
	}
	p := pod.DeepCopy()
	p.Status = want
	_, err = n.cs.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{})
	return err
}

func (n *Node) ready(key string, pod *corev1.Pod) bool {
	if n.opts.Manual {
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.manual[key]
	}
	if tcpProbe(pod) == nil {
		return true
	}
	return n.alive(pod)
}

// alive runs the Pod's tcpSocket readiness probe; a Pod without one is
// alive while it exists.
func (n *Node) alive(pod *corev1.Pod) bool {
	probe := tcpProbe(pod)
	if probe == nil {
		return false
	}
	port := probe.Port.IntValue()
	if probe.Port.Type == intstr.String {
		port = 0
		for _, c := range pod.Spec.Containers {
			for _, cp := range c.Ports {
				if cp.Name == probe.Port.StrVal {
					port = int(cp.ContainerPort)
				}
			}
		}
	}
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(n.podIP(pod), strconv.Itoa(port)), 500*time.Millisecond)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// portsTaken is the scheduler's NodePorts filter: a Pod cannot go where
// another Pod, even one terminating, holds a host port it asks for.
func (n *Node) portsTaken(pod *corev1.Pod) bool {
	want := hostPorts(pod)
	if len(want) == 0 {
		return false
	}
	n.bindMu.Lock()
	defer n.bindMu.Unlock()
	pods, _ := n.pods.List(labels.Everything())
	for _, p := range pods {
		if p.UID == pod.UID || (p.Spec.NodeName != n.Name && n.bound[p.UID] == "") {
			continue
		}
		for port := range hostPorts(p) {
			if want[port] {
				return true
			}
		}
	}
	// Bound, as far as the next call to portsTaken knows, even before the
	// informer shows it.
	n.bound[pod.UID] = n.Name
	return false
}

func hostPorts(pod *corev1.Pod) map[int32]bool {
	ports := map[int32]bool{}
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.HostPort != 0 {
				ports[p.HostPort] = true
			}
		}
	}
	return ports
}

func tcpProbe(pod *corev1.Pod) *corev1.TCPSocketAction {
	for _, c := range pod.Spec.Containers {
		if c.ReadinessProbe != nil && c.ReadinessProbe.TCPSocket != nil {
			return c.ReadinessProbe.TCPSocket
		}
	}
	return nil
}

func (n *Node) podIP(pod *corev1.Pod) string {
	if n.opts.PodIP != nil {
		return n.opts.PodIP(pod)
	}
	return n.IP
}

// status is what a kubelet reports for a running Pod.
func (n *Node) status(pod *corev1.Pod, ready bool) corev1.PodStatus {
	s := *pod.Status.DeepCopy()
	s.Phase = corev1.PodRunning
	ip := n.podIP(pod)
	s.HostIP, s.PodIP = n.IP, ip
	s.HostIPs = []corev1.HostIP{{IP: n.IP}}
	s.PodIPs = []corev1.PodIP{{IP: ip}}
	if s.StartTime == nil {
		now := metav1.Now()
		s.StartTime = &now
	}
	readyStatus := corev1.ConditionFalse
	if ready {
		readyStatus = corev1.ConditionTrue
	}
	for _, c := range []struct {
		typ    corev1.PodConditionType
		status corev1.ConditionStatus
	}{
		{corev1.PodScheduled, corev1.ConditionTrue},
		{corev1.PodInitialized, corev1.ConditionTrue},
		{corev1.ContainersReady, readyStatus},
		{corev1.PodReady, readyStatus},
	} {
		setPodCondition(&s, c.typ, c.status)
	}
	return s
}

func setPodCondition(s *corev1.PodStatus, typ corev1.PodConditionType, status corev1.ConditionStatus) {
	for i := range s.Conditions {
		if s.Conditions[i].Type == typ {
			if s.Conditions[i].Status != status {
				s.Conditions[i].Status = status
				s.Conditions[i].LastTransitionTime = metav1.Now()
			}
			return
		}
	}
	s.Conditions = append(s.Conditions, corev1.PodCondition{Type: typ, Status: status, LastTransitionTime: metav1.Now()})
}

func statusEqual(a, b corev1.PodStatus) bool {
	if a.Phase != b.Phase || a.PodIP != b.PodIP || a.HostIP != b.HostIP || len(a.Conditions) != len(b.Conditions) {
		return false
	}
	for i := range a.Conditions {
		if a.Conditions[i].Type != b.Conditions[i].Type || a.Conditions[i].Status != b.Conditions[i].Status {
			return false
		}
	}
	return true
}
