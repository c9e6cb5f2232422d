// Package kubestatus writes the status model (package status) back to the
// Kubernetes objects it describes, as users of Envoy Gateway and Istio
// read it with kubectl: policies get GEP-713 status.ancestors (one per
// targetRef, with our controllerName), HTTPRoutes and GRPCRoutes
// status.parents (one per parent that is ours), Gateways their conditions
// and their listeners' (with attached-route counts), GatewayClasses
// Accepted. Every condition carries the observedGeneration that was
// translated. Entries of other controllers are left as they are.
//
// A write happens only when what would be written differs from what the
// object has (conditions compared without their lastTransitionTime, which
// is kept while a condition's status holds), so a restart or a second
// computation of the same status writes nothing.
//
// While a replica settles (it just started, or just became the leader),
// proxies are still reconnecting to it: a Programmed condition that would
// fall to NoProxyConnected or Pending keeps what the object has for the
// same generation, since those proxies keep running what they ACKed. A
// NACK, a new generation and every other condition are written at once.
package kubestatus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/resource"
	"github.com/bulkhead-mesh/bulkhead/control-plane/status"
)

// ControllerName is written into every entry this control plane owns.
const ControllerName = gwapiv1.GatewayController(resource.ControllerName)

// maxMessage bounds a condition's message (the API allows 32768 bytes).
const maxMessage = 32 * 1024

// Writer writes reports to an API server.
type Writer struct {
	Client client.Client
	Log    *slog.Logger
	// Now is the time of a new transition (tests); nil: metav1.Now.
	Now func() metav1.Time

	settling bool // of one Write
}

// Write brings the status of every object of the report up to date, and
// returns how many objects it wrote. Objects that are gone are skipped; a
// conflict (someone wrote in between) is left for the next report.
// settling holds Programmed conditions as the package says.
func (w *Writer) Write(ctx context.Context, rep status.Report, settling bool) (int, error) {
	w = &Writer{Client: w.Client, Log: w.Log, Now: w.Now, settling: settling} // this write's own
	attached := map[string]map[string]int32{}
	for _, l := range rep.Listeners {
		if attached[l.Gateway] == nil {
			attached[l.Gateway] = map[string]int32{}
		}
		attached[l.Gateway][l.Name] = l.AttachedRoutes
	}
	ours := map[resource.Key]bool{}
	for _, o := range rep.Objects {
		if o.Kind == "Gateway" || o.Kind == "Service" {
			ours[resource.Key{Kind: o.Kind, Namespace: o.Namespace, Name: o.Name}] = true
		}
	}
	written := 0
	var errs []error
	for _, o := range rep.Objects {
		obj := newObject(o.Kind)
		if obj == nil {
			continue // a kind without status (Service, EndpointSlice)
		}
		key := client.ObjectKey{Namespace: o.Namespace, Name: o.Name}
		if o.Kind == "GatewayClass" {
			key.Namespace = ""
		}
		if err := w.Client.Get(ctx, key, obj); err != nil {
			if !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("kubestatus: get %s %s: %w", o.Kind, key, err))
			}
			continue
		}
		before := obj.DeepCopyObject().(client.Object)
		w.apply(obj, o, attached[o.Namespace+"/"+o.Name], ours)
		if equality.Semantic.DeepEqual(before, obj) {
			continue
		}
		if err := w.Client.Status().Update(ctx, obj); err != nil {
			if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
				continue
			}
			errs = append(errs, fmt.Errorf("kubestatus: update %s %s: %w", o.Kind, key, err))
			continue
		}
		written++
	}
	return written, errors.Join(errs...)
}

func newObject(kind string) client.Object {
	switch kind {
	case "BackendPolicy":
		return &v1alpha1.BackendPolicy{}
	case "SecurityPolicy":
		return &v1alpha1.SecurityPolicy{}
	case "RateLimitPolicy":
		return &v1alpha1.RateLimitPolicy{}
	case "HTTPRoute":
		return &gwapiv1.HTTPRoute{}
	case "GRPCRoute":
		return &gwapiv1.GRPCRoute{}
	case "Gateway":
		return &gwapiv1.Gateway{}
	case "GatewayClass":
		return &gwapiv1.GatewayClass{}
	}
	return nil
}

// apply sets what the report says of o on obj (its status subresource).
func (w *Writer) apply(obj client.Object, o status.Object, attached map[string]int32, ours map[resource.Key]bool) {
	switch v := obj.(type) {
	case *v1alpha1.BackendPolicy:
		v.Status.Ancestors = w.ancestors(v.Status.Ancestors, v.Namespace, v.Spec.TargetRefs, o)
	case *v1alpha1.SecurityPolicy:
		v.Status.Ancestors = w.ancestors(v.Status.Ancestors, v.Namespace, v.Spec.TargetRefs, o)
	case *v1alpha1.RateLimitPolicy:
		v.Status.Ancestors = w.ancestors(v.Status.Ancestors, v.Namespace, v.Spec.TargetRefs, o)
	case *gwapiv1.HTTPRoute:
		v.Status.Parents = w.parents(v.Status.Parents, v.Namespace, v.Spec.ParentRefs, o, ours)
	case *gwapiv1.GRPCRoute:
		v.Status.Parents = w.parents(v.Status.Parents, v.Namespace, v.Spec.ParentRefs, o, ours)
	case *gwapiv1.Gateway:
		w.gateway(v, o, attached)
	case *gwapiv1.GatewayClass:
		w.setConditions(&v.Status.Conditions, o, v.Generation)
	}
}

// conditions are the report's conditions of o as Kubernetes conditions,
// and only those (what this controller owns), keeping the transition time
// of each whose status did not change.
func (w *Writer) conditions(current []metav1.Condition, o status.Object, generation int64) []metav1.Condition {
	var out []metav1.Condition
	for _, c := range o.Conditions {
		msg := c.Message
		if len(msg) > maxMessage {
			msg = msg[:maxMessage-3] + "..."
		}
		gen := o.ObservedGeneration
		if gen == 0 {
			gen = generation
		}
		cond := metav1.Condition{Type: c.Type, Status: metav1.ConditionStatus(c.Status), Reason: c.Reason, Message: msg, ObservedGeneration: gen, LastTransitionTime: w.now()}
		prev := apimeta.FindStatusCondition(current, c.Type)
		if prev != nil && w.settling && c.Type == status.CondProgrammed && prev.ObservedGeneration == gen &&
			(c.Reason == status.ReasonNoProxyConnected || c.Reason == status.ReasonPending) {
			out = append(out, *prev) // its proxies are reconnecting
			continue
		}
		if prev != nil && prev.Status == cond.Status {
			cond.LastTransitionTime = prev.LastTransitionTime
		}
		out = append(out, cond)
	}
	return out
}

func (w *Writer) setConditions(dst *[]metav1.Condition, o status.Object, generation int64) {
	*dst = w.conditions(*dst, o, generation)
}

func (w *Writer) now() metav1.Time {
	if w.Now != nil {
		return w.Now()
	}
	return metav1.Now()
}

// ancestors are a policy's GEP-713 entries: ours, one per targetRef (the
// object it targets), replaced; other controllers' kept.
func (w *Writer) ancestors(current []gwapiv1.PolicyAncestorStatus, ns string, refs []v1alpha1.PolicyTargetReference, o status.Object) []gwapiv1.PolicyAncestorStatus {
	var out []gwapiv1.PolicyAncestorStatus
	mine := map[string][]metav1.Condition{}
	for _, a := range current {
		if a.ControllerName != ControllerName {
			out = append(out, a)
			continue
		}
		mine[refKey(a.AncestorRef)] = a.Conditions
	}
	for _, ref := range refs {
		group := ref.Group
		kind := ref.Kind
		namespace := gwapiv1.Namespace(ns)
		parent := gwapiv1.ParentReference{Group: &group, Kind: &kind, Namespace: &namespace, Name: ref.Name, SectionName: ref.SectionName}
		out = append(out, gwapiv1.PolicyAncestorStatus{AncestorRef: parent, ControllerName: ControllerName, Conditions: w.conditions(mine[refKey(parent)], o, 0)})
		if len(out) == 16 {
			break // the CRD's bound
		}
	}
	return out
}

// parents are a route's entries: ours, one per parentRef that is ours (a
// Gateway of our class, or a Service), replaced; other controllers' kept.
func (w *Writer) parents(current []gwapiv1.RouteParentStatus, ns string, refs []gwapiv1.ParentReference, o status.Object, ours map[resource.Key]bool) []gwapiv1.RouteParentStatus {
	var out []gwapiv1.RouteParentStatus
	mine := map[string][]metav1.Condition{}
	for _, p := range current {
		if p.ControllerName != ControllerName {
			out = append(out, p)
			continue
		}
		mine[refKey(p.ParentRef)] = p.Conditions
	}
	for _, ref := range refs {
		kind := "Gateway"
		if ref.Kind != nil {
			kind = string(*ref.Kind)
		}
		pns := ns
		if ref.Namespace != nil {
			pns = string(*ref.Namespace)
		}
		if !ours[resource.Key{Kind: kind, Namespace: pns, Name: string(ref.Name)}] && kind == "Gateway" {
			continue // another controller's Gateway
		}
		out = append(out, gwapiv1.RouteParentStatus{ParentRef: ref, ControllerName: ControllerName, Conditions: w.conditions(mine[refKey(ref)], o, 0)})
		if len(out) == 32 {
			break // the CRD's bound
		}
	}
	return out
}

// gateway sets a Gateway's conditions and its listeners'.
func (w *Writer) gateway(g *gwapiv1.Gateway, o status.Object, attached map[string]int32) {
	w.setConditions(&g.Status.Conditions, o, g.Generation)
	current := map[gwapiv1.SectionName]gwapiv1.ListenerStatus{}
	for _, l := range g.Status.Listeners {
		current[l.Name] = l
	}
	var out []gwapiv1.ListenerStatus
	for _, l := range g.Spec.Listeners {
		ls := gwapiv1.ListenerStatus{Name: l.Name, AttachedRoutes: attached[string(l.Name)]}
		if l.Protocol == gwapiv1.HTTPProtocolType {
			group := gwapiv1.Group(gwapiv1.GroupName) // as the API server defaults it
			ls.SupportedKinds = []gwapiv1.RouteGroupKind{{Group: &group, Kind: "HTTPRoute"}, {Group: &group, Kind: "GRPCRoute"}}
		}
		var conds []status.Condition
		for _, c := range o.Conditions {
			if c.Type == status.CondProgrammed {
				conds = append(conds, c)
			}
		}
		accepted := status.Condition{Type: "Accepted", Status: "True", Reason: "Accepted"}
		if l.Protocol != gwapiv1.HTTPProtocolType {
			accepted = status.Condition{Type: "Accepted", Status: "False", Reason: "UnsupportedProtocol", Message: fmt.Sprintf("%s is not supported yet (HTTP only: terminate TLS in front of the Gateway)", l.Protocol)}
		}
		conds = append(conds, accepted, status.Condition{Type: "ResolvedRefs", Status: "True", Reason: "ResolvedRefs"})
		lo := o
		lo.Conditions = conds
		ls.Conditions = w.conditions(current[l.Name].Conditions, lo, g.Generation)
		out = append(out, ls)
	}
	g.Status.Listeners = out
}

func refKey(p gwapiv1.ParentReference) string {
	group, kind, ns, section := "", "", "", ""
	if p.Group != nil {
		group = string(*p.Group)
	}
	if p.Kind != nil {
		kind = string(*p.Kind)
	}
	if p.Namespace != nil {
		ns = string(*p.Namespace)
	}
	if p.SectionName != nil {
		section = string(*p.SectionName)
	}
	return group + "/" + kind + "/" + ns + "/" + string(p.Name) + "/" + section
}
