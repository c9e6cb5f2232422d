package controlplane

import (
	"context"

	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/go-logr/logr"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	coordinationv1 "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
)

// LeaderElection makes one of several control-plane replicas (all of which
// serve xDS) the one that writes status, through a coordination.k8s.io
// Lease. A leader that stops or dies is replaced once the lease expires:
// LeaseDuration after its last renewal plus up to a jittered RetryPeriod,
// under 12 s with the defaults; one cut off from the API server stops
// writing RenewDeadline (5 s) after its last renewal, before another can
// lead.
type LeaderElection struct {
	Config *rest.Config
	// Namespace and Name of the Lease (default bulkhead-control-plane in
	// Namespace).
	Namespace, Name string
	// Identity of this replica (default: host name and a random suffix).
	Identity string
	// LeaseDuration, RenewDeadline and RetryPeriod default to 8 s, 5 s
	// and 1.5 s.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// withDefaults fills what was left empty.
func (le LeaderElection) withDefaults() LeaderElection {
	if le.Name == "" {
		le.Name = "bulkhead-control-plane"
	}
	if le.Identity == "" {
		host, _ := os.Hostname()
		le.Identity = host + "-" + rand.String(6)
	}
	if le.LeaseDuration == 0 {
		le.LeaseDuration, le.RenewDeadline, le.RetryPeriod = 8*time.Second, 5*time.Second, 1500*time.Millisecond
	}
	return le
}

// elect runs the election until ctx ends, keeping cp.leading true while
// this replica holds the lease (le with its defaults).
func (cp *ControlPlane) elect(ctx context.Context, le LeaderElection, log *slog.Logger) error {
	cc, err := coordinationv1.NewForConfig(le.Config)
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: le.Namespace, Name: le.Name},
		Client:     cc,
		LockConfig: resourcelock.ResourceLockConfig{Identity: le.Identity},
	}
	// client-go logs through the context's logger: ours, not klog's stderr.
	ctx = klog.NewContext(ctx, logr.FromSlogHandler(log.With("component", "leader-election").Handler()))
	for ctx.Err() == nil {
		leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
			Lock:          lock,
			LeaseDuration: le.LeaseDuration,
			RenewDeadline: le.RenewDeadline,
			RetryPeriod:   le.RetryPeriod,
			// Not released on stop: releasing waits for the API server, and
			// a leader that lost it would keep writing meanwhile. A replica
			// stops leading RenewDeadline after its last renewal, before
			// any other can take the lease (LeaseDuration).
			ReleaseOnCancel: false,
			Name:            le.Name,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(context.Context) {
					log.Info("leading: this replica writes status", "lease", le.Namespace+"/"+le.Name, "identity", le.Identity)
					cp.leading.Store(true)
				},
				OnStoppedLeading: func() {
					cp.leading.Store(false)
					log.Info("not leading", "lease", le.Namespace+"/"+le.Name, "identity", le.Identity)
				},
			},
		})
	}
	return nil
}

// Leading reports whether this replica writes status (always, without
// leader election).
func (cp *ControlPlane) Leading() bool { return cp.leading.Load() }
