// Package kubernetes is the Kubernetes-mode provider: informers on a real
// API server (controller-runtime's cache) for GatewayClass, Gateway,
// HTTPRoute, GRPCRoute, ReferenceGrant, Service, EndpointSlice and the three
// mesh.bulkhead.dev policies, turned into one consistent input snapshot
// after every change, for the same pipeline as universal mode. Only
// Gateways whose GatewayClass names this controller are ours; the others
// are listed as foreign, so that a route attached to them is no concern of
// ours. The API server has already applied the CRDs' admission rules.
package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/provider"
	"github.com/bulkhead-mesh/bulkhead/control-plane/resource"
)

// ControllerName is the GatewayClass controllerName of the Gateways this
// control plane programs.
const ControllerName = resource.ControllerName

// Provider watches an API server.
type Provider struct {
	// Config reaches the API server (kubeconfig or in-cluster).
	Config *rest.Config
	// Namespaces to watch (empty: all). GatewayClasses are cluster-scoped
	// and always watched.
	Namespaces []string
	Log        *slog.Logger
}

var _ provider.Provider = (*Provider)(nil)

// Scheme holds every kind the provider reads.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, discoveryv1.AddToScheme, gwapiv1.Install, v1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// NewClient is a client of the API server that knows every kind the
// provider reads (status writing, tests).
func NewClient(cfg *rest.Config) (client.Client, error) {
	scheme, err := Scheme()
	if err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: scheme})
}

// watched are the kinds the provider watches.
func watched() []client.Object {
	return []client.Object{
		&gwapiv1.GatewayClass{}, &gwapiv1.Gateway{}, &gwapiv1.HTTPRoute{}, &gwapiv1.GRPCRoute{}, &gwapiv1.ReferenceGrant{},
		&corev1.Service{}, &discoveryv1.EndpointSlice{},
		&v1alpha1.BackendPolicy{}, &v1alpha1.RateLimitPolicy{}, &v1alpha1.SecurityPolicy{},
	}
}

// Run sends a snapshot once the informers have synced, and again after
// every change (bursts are folded by the control plane's debouncer).
func (p *Provider) Run(ctx context.Context, out chan<- provider.Update) error {
	scheme, err := Scheme()
	if err != nil {
		return err
	}
	opts := cache.Options{Scheme: scheme}
	if len(p.Namespaces) > 0 {
		opts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range p.Namespaces {
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	c, err := cache.New(p.Config, opts)
	if err != nil {
		return fmt.Errorf("kubernetes: %w", err)
	}
	changed := make(chan struct{}, 1)
	notify := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	handler := toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { notify() },
		UpdateFunc: func(any, any) { notify() },
		DeleteFunc: func(any) { notify() },
	}
	for _, obj := range watched() {
		inf, err := c.GetInformer(ctx, obj)
		if err != nil {
			return fmt.Errorf("kubernetes: informer of %T: %w", obj, err)
		}
		if _, err := inf.AddEventHandler(handler); err != nil {
			return fmt.Errorf("kubernetes: informer of %T: %w", obj, err)
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- c.Start(ctx) }()
	p.Log.Info("kubernetes: waiting for the informers to sync", "host", p.Config.Host, "namespaces", p.Namespaces)
	if !c.WaitForCacheSync(ctx) {
		if err := ctx.Err(); err != nil {
			return nil
		}
		return errors.New("kubernetes: the informers did not sync (are the CRDs installed? policies/crds and policies/crds-gateway-api)")
	}
	for {
		res, err := Snapshot(ctx, c)
		select {
		case out <- provider.Update{Resources: res, Err: err}:
		case <-ctx.Done():
			return nil
		}
		select {
		case <-changed:
		case err := <-errc:
			if err != nil && ctx.Err() == nil {
				return fmt.Errorf("kubernetes: %w", err)
			}
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

// Snapshot lists every watched kind from a reader (the informers' cache)
// into one input snapshot. Objects are copies: the cache's are shared.
func Snapshot(ctx context.Context, r client.Reader) (*resource.Resources, error) {
	res := &resource.Resources{}
	var errs []error
	list := func(l client.ObjectList) bool {
		if err := r.List(ctx, l); err != nil {
			errs = append(errs, fmt.Errorf("kubernetes: list %T: %w", l, err))
			return false
		}
		return true
	}
	add := func(kind string, o client.Object) {
		o = o.DeepCopyObject().(client.Object)
		k := resource.KeyOf(kind, o)
		if err := res.Add(k, o, resource.Origin{Generation: o.GetGeneration()}); err != nil {
			errs = append(errs, err)
		}
	}
	ours := map[string]bool{}
	var classes gwapiv1.GatewayClassList
	if list(&classes) {
		for i := range classes.Items {
			gc := &classes.Items[i]
			if gc.Spec.ControllerName == ControllerName {
				ours[gc.Name] = true
				add("GatewayClass", gc)
			}
		}
	}
	var gws gwapiv1.GatewayList
	if list(&gws) {
		for i := range gws.Items {
			g := &gws.Items[i]
			if !ours[string(g.Spec.GatewayClassName)] {
				res.ForeignGateways = append(res.ForeignGateways, resource.KeyOf("Gateway", g))
				continue
			}
			add("Gateway", g)
		}
	}
	for _, l := range []struct {
		kind string
		list client.ObjectList
	}{
		{"HTTPRoute", &gwapiv1.HTTPRouteList{}},
		{"GRPCRoute", &gwapiv1.GRPCRouteList{}},
		{"ReferenceGrant", &gwapiv1.ReferenceGrantList{}},
		{"Service", &corev1.ServiceList{}},
		{"EndpointSlice", &discoveryv1.EndpointSliceList{}},
		{"BackendPolicy", &v1alpha1.BackendPolicyList{}},
		{"RateLimitPolicy", &v1alpha1.RateLimitPolicyList{}},
		{"SecurityPolicy", &v1alpha1.SecurityPolicyList{}},
	} {
		if !list(l.list) {
			continue
		}
		items, err := meta.ExtractList(l.list)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, it := range items {
			add(l.kind, it.(client.Object))
		}
	}
	res.Sort()
	return res, errors.Join(errs...)
}
