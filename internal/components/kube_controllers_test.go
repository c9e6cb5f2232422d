package components_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/bulkhead-mesh/bulkhead/internal/components"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
)

// The real Deployment, ReplicaSet and EndpointSlice controllers run: a
// Deployment's Pods, bound and reported by testenv.Node, become an
// EndpointSlice whose endpoints follow the Pods' readiness probes; kubectl
// reads it all.
func TestKubeControllerManager(t *testing.T) {
	t.Parallel()
	k := testenv.NewKube(t, components.KubeOptions{Controllers: []string{"deployment", "replicaset", "endpointslice"}})
	ctx := t.Context()
	cs, err := kubernetes.NewForConfig(k.Config)
	if err != nil {
		t.Fatal(err)
	}
	// A real listener stands for the Pods' container: their readiness
	// probe passes while it accepts connections.
	hostIP := testenv.HostIP(t)
	l, err := net.Listen("tcp", net.JoinHostPort(hostIP.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := int32(l.Addr().(*net.TCPAddr).Port)
	testenv.StartNode(t, k.Config, testenv.NodeOptions{IP: hostIP.String()})

	labels := map[string]string{"app": "echo"}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: "default"},
		Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Name: "grpc", Port: 80, TargetPort: intstr.FromString("grpc")}}},
	}
	if _, err := cs.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	replicas := int32(3)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "echo", Image: "bulkhead.dev/none",
					Ports:          []corev1.ContainerPort{{Name: "grpc", ContainerPort: port}},
					ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("grpc")}}},
				}}},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ready := func() (int, error) {
		slices, err := cs.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=echo"})
		if err != nil {
			return 0, err
		}
		n := 0
		for _, s := range slices.Items {
			for _, e := range s.Endpoints {
				if e.Conditions.Ready != nil && *e.Conditions.Ready {
					n++
				}
			}
		}
		return n, nil
	}
	testenv.Eventually(t, 60*time.Second, "3 ready endpoints in echo's EndpointSlices", func() error {
		n, err := ready()
		if err != nil {
			return err
		}
		if n != 3 {
			return fmt.Errorf("%d ready endpoints", n)
		}
		return nil
	})

	// kubectl sees what the controllers did.
	out, err := k.Kubectl(ctx, "", "get", "deployment", "echo", "-n", "default", "-o", "jsonpath={.status.readyReplicas}")
	if err != nil {
		t.Fatal(err)
	}
	if out != "3" {
		t.Fatalf("kubectl get deployment echo: readyReplicas %q; want 3", out)
	}
	if _, err := k.Kubectl(ctx, "", "scale", "deployment", "echo", "-n", "default", "--replicas=1"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 60*time.Second, "echo scaled to one endpoint", func() error {
		n, err := ready()
		if err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("%d ready endpoints", n)
		}
		return nil
	})
	// The probe fails once the container stops: the endpoint is not ready.
	l.Close()
	testenv.Eventually(t, 30*time.Second, "echo's endpoint not ready after its listener closed", func() error {
		n, err := ready()
		if err != nil {
			return err
		}
		if n != 0 {
			return fmt.Errorf("%d ready endpoints", n)
		}
		return nil
	})
	if _, err := k.Kubectl(ctx, "", "get", "nosuchkind"); err == nil || !strings.Contains(err.Error(), "nosuchkind") {
		t.Fatalf("kubectl get nosuchkind: %v; want an error naming it", err)
	}
}
