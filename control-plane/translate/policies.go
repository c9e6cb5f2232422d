package translate

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies"
	"github.com/bulkhead-mesh/bulkhead/control-plane/resource"
)

// policyKind is how translate runs the policies of one kind.
type policyKind struct {
	name string
	// targets are the kinds its targetRefs may name (its features then
	// refuse the targets they cannot attach to).
	targets policies.Attach
	// list returns its policies in the order they apply.
	list func(*resource.Resources) []policyObject
	// atomic: a policy with any problem applies nothing (otherwise each
	// feature without a problem applies, to the targets it attaches to).
	atomic bool
	// precedence arbitrates between policies that set the same thing on
	// the same IR object (BackendPolicy); without it, they apply in turn.
	precedence bool
	// accepted is the message of Accepted=True.
	accepted string
	// prepare gives the kind's targets what its features share (nil:
	// nothing); check is a rule of the kind over a policy without problems
	// (nil: none); commit records an applied policy (nil: nothing).
	prepare func(t *translator, p policyObject, targets []*policies.Target)
	check   func(t *translator, p policyObject, targets []*policies.Target, report policies.Report)
	commit  func(t *translator, p policyObject, targets []*policies.Target)
	// closed fails closed what the kind's policies that are not in force
	// were to protect (nil: nothing).
	closed func(t *translator, k policyKind, runs []*policyRun)
}

// policyObject is a policy with its targetRefs.
type policyObject struct {
	obj  client.Object
	key  resource.Key
	refs []v1alpha1.PolicyTargetReference
}

// KeptMessage ends the Accepted message of a policy whose new version is
// refused while its last accepted version stays in force.
const KeptMessage = "the last accepted version stays in force"

// policyObjectOf is the policyObject of one policy of a kind.
func policyObjectOf(kind string, obj client.Object) policyObject {
	var refs []v1alpha1.PolicyTargetReference
	switch p := obj.(type) {
	case *v1alpha1.BackendPolicy:
		refs = p.Spec.TargetRefs
	case *v1alpha1.SecurityPolicy:
		refs = p.Spec.TargetRefs
	case *v1alpha1.RateLimitPolicy:
		refs = p.Spec.TargetRefs
	}
	return policyObject{obj: obj, key: resource.KeyOf(kind, obj), refs: refs}
}

// sameSpec reports whether two versions of a policy ask for the same.
func sameSpec(a, b client.Object) bool {
	spec := func(o client.Object) any {
		switch p := o.(type) {
		case *v1alpha1.BackendPolicy:
			return p.Spec
		case *v1alpha1.SecurityPolicy:
			return p.Spec
		case *v1alpha1.RateLimitPolicy:
			return p.Spec
		}
		return o
	}
	return reflect.DeepEqual(spec(a), spec(b))
}

// objects makes the policyObjects of a kind's policies, in their order.
func objects[P client.Object](kind string, list []P) []policyObject {
	out := make([]policyObject, len(list))
	for i, p := range list {
		out[i] = policyObjectOf(kind, p)
	}
	return out
}

// problem is one problem of a policy; notFound marks a target that could
// not be resolved.
type problem struct {
	field, message string
	notFound       bool
}

// policyRun is one policy being translated.
type policyRun struct {
	p        policyObject
	targets  []*policies.Target
	problems []problem
	// conflicts are the things another policy set first (precedence).
	conflicts []string
	// built are the features to apply, with their values and targets.
	built []builtFeature
	// kept is the earlier, accepted version that applies instead of this
	// one (nil: none).
	kept *policyRun
}

type builtFeature struct {
	f       policies.Feature
	value   any
	targets []*policies.Target
}

// claimKey is one thing (what) set on one IR object; claim records which
// policy set it, at which level.
type claimKey struct {
	obj  any
	what string
}

type claim struct {
	policy     string
	routeLevel bool
}

// policies runs every kind's policies, then its features' Finish steps.
// Policies of a kind without precedence apply one after the other, each
// validated against what the ones before it applied (one SecurityPolicy
// per Service); with precedence, all are validated, then applied by level.
func (t *translator) policies() {
	env := &env{t: t}
	for _, k := range kinds {
		var features []policies.Feature
		for _, f := range Features {
			if f.Info().Kind == k.name {
				features = append(features, f)
			}
		}
		var runs []*policyRun
		for _, p := range k.list(t.res) {
			r := t.runPolicy(k, features, p, env)
			runs = append(runs, r)
			if !k.precedence {
				t.applyPolicies(k, []*policyRun{r}, env)
			}
		}
		if k.precedence {
			t.applyPolicies(k, runs, env)
		}
		for _, r := range runs {
			t.policyStatus(k, r)
			if in := r.inForce(k); in != nil {
				t.inForce[r.p.key] = in.targets
				if len(in.problems) == 0 {
					t.accepted[r.p.key] = in.p.obj
				}
			}
		}
		if k.closed != nil {
			k.closed(t, k, runs)
		}
		for _, f := range features {
			f.Complete(env)
		}
	}
}

// buildPolicy resolves a policy's targets and validates its features.
func (t *translator) buildPolicy(k policyKind, features []policies.Feature, p policyObject, env policies.Env) *policyRun {
	r := &policyRun{p: p}
	report := func(field, msg string) {
		r.problems = append(r.problems, problem{field: field, message: msg})
	}
	r.targets = t.resolveTargets(k, p, func(field, msg string, notFound bool) {
		report(field, msg)
		r.problems[len(r.problems)-1].notFound = notFound
	})
	if k.prepare != nil {
		k.prepare(t, p, r.targets)
	}
	failed := func() bool { return len(r.problems) > 0 }
	for _, f := range features {
		if !f.Present(p.obj) {
			continue
		}
		var attached []*policies.Target
		for _, tg := range r.targets {
			if f.Info().Attaches&policies.AttachOf(tg.Kind) == 0 {
				f.Refuse(tg, report)
				continue
			}
			attached = append(attached, tg)
		}
		if v, ok := f.Validate(p.obj, attached, env, report, failed); ok {
			r.built = append(r.built, builtFeature{f: f, value: v, targets: attached})
		}
	}
	if k.check != nil && !failed() {
		k.check(t, p, r.targets, report)
	}
	return r
}

// reportProblems records a run's problems in the translation's errors.
func (t *translator) reportProblems(r *policyRun) {
	for _, p := range r.problems {
		t.fail(r.p.key, p.field, "%s", p.message)
	}
}

// runPolicy validates a policy and decides what of it applies: the policy
// itself; or, when it has a problem and an earlier version of it was in
// force, that version, if it still applies cleanly (an invalid edit never
// removes what the last accepted version configured).
func (t *translator) runPolicy(k policyKind, features []policies.Feature, p policyObject, env policies.Env) *policyRun {
	r := t.buildPolicy(k, features, p, env)
	t.reportProblems(r)
	if len(r.problems) > 0 {
		if prev, ok := t.opts.Accepted[p.key]; ok && !sameSpec(prev, p.obj) {
			old := t.buildPolicy(k, features, policyObjectOf(k.name, prev), env)
			if len(old.problems) == 0 {
				r.kept = old
			}
		}
	}
	return r
}

// inForce is the run that applies: the policy, its kept earlier version,
// or none (a policy of an atomic kind with a problem).
func (r *policyRun) inForce(k policyKind) *policyRun {
	switch {
	case r.kept != nil:
		return r.kept
	case k.atomic && len(r.problems) > 0:
		return nil
	}
	return r
}

// applyPolicies applies the built features. With precedence, every
// policy's Service targets apply first, then every route target, so that
// route-level policies can override Service-level ones.
func (t *translator) applyPolicies(k policyKind, runs []*policyRun, env policies.Env) {
	levels := []func(*policies.Target) bool{func(*policies.Target) bool { return true }}
	if k.precedence {
		levels = []func(*policies.Target) bool{
			func(tg *policies.Target) bool { return policies.AttachOf(tg.Kind) != policies.Route },
			func(tg *policies.Target) bool { return policies.AttachOf(tg.Kind) == policies.Route },
		}
	}
	claims := map[claimKey]claim{}
	for _, level := range levels {
		for _, run := range runs {
			r := run.inForce(k)
			if r == nil {
				continue
			}
			for _, tg := range r.targets {
				if !level(tg) {
					continue
				}
				tg.Claim = t.claimer(k, r, tg, claims)
				for _, b := range r.built {
					if slices.Contains(b.targets, tg) {
						b.f.ApplyTo(b.value, tg, env)
					}
				}
			}
		}
	}
	for _, run := range runs {
		if r := run.inForce(k); r != nil && k.commit != nil {
			k.commit(t, r.p, r.targets)
		}
	}
}

// claimer is how a target's features set things: at once, or, with
// precedence, unless a policy of the same level set it first (then it is
// a conflict, which the younger policy's status reports).
func (t *translator) claimer(k policyKind, r *policyRun, tg *policies.Target, claims map[claimKey]claim) func(any, string, func()) {
	if !k.precedence {
		return func(_ any, _ string, apply func()) { apply() }
	}
	routeLevel := policies.AttachOf(tg.Kind) == policies.Route
	name := k.name + " " + r.p.key.Namespace + "/" + r.p.key.Name
	return func(obj any, what string, apply func()) {
		ck := claimKey{obj, what}
		if c, ok := claims[ck]; ok && c.routeLevel == routeLevel {
			msg := fmt.Sprintf("%s on %s is already set by %s", what, tg, c.policy)
			if !slices.Contains(r.conflicts, msg) {
				r.conflicts = append(r.conflicts, msg)
			}
			return
		}
		claims[ck] = claim{policy: name, routeLevel: routeLevel}
		apply()
	}
}

// policyStatus sets a policy's Accepted condition: False with every
// problem (reason TargetNotFound when missing targets are the only
// trouble, Invalid otherwise), False Conflicted when another policy took
// precedence, True otherwise.
func (t *translator) policyStatus(k policyKind, r *policyRun) {
	origin := t.res.Origin(r.p.key)
	if len(r.problems) > 0 {
		reason := "TargetNotFound"
		msgs := make([]string, len(r.problems))
		for i, p := range r.problems {
			msgs[i] = p.field + ": " + p.message
			if !p.notFound {
				reason = ReasonInvalid
			}
		}
		msg := strings.Join(msgs, "; ")
		if r.kept != nil {
			msg += "; " + KeptMessage
		}
		t.status.Set(r.p.key, origin, Condition{Type: CondAccepted, Status: "False", Reason: reason, Message: msg})
		return
	}
	if r.kept != nil {
		r.conflicts = append(r.conflicts, r.kept.conflicts...)
	}
	if len(r.conflicts) > 0 {
		t.status.Set(r.p.key, origin, Condition{Type: CondAccepted, Status: "False", Reason: "Conflicted", Message: strings.Join(r.conflicts, "; ") + " (older policies win)"})
		return
	}
	t.status.Set(r.p.key, origin, Condition{Type: CondAccepted, Status: "True", Reason: ReasonAccepted, Message: k.accepted})
}

var backendPolicies = policyKind{
	name:       policies.BackendPolicy,
	targets:    policies.Service | policies.Route,
	precedence: true,
	accepted:   "valid; applied by every caller of the targeted Services and routes (proxyless clients, sidecars, Gateways' Envoy)",
	// Oldest first (creationTimestamp), then by namespace/name: the order
	// of precedence between policies of one level.
	list: func(res *resource.Resources) []policyObject {
		pols := slices.Clone(res.BackendPolicies)
		sort.SliceStable(pols, func(i, j int) bool {
			a, b := pols[i], pols[j]
			if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
				return a.CreationTimestamp.Before(&b.CreationTimestamp)
			}
			if a.Namespace != b.Namespace {
				return a.Namespace < b.Namespace
			}
			return a.Name < b.Name
		})
		return objects(policies.BackendPolicy, pols)
	},
}

var securityPolicies = policyKind{
	name:     policies.SecurityPolicy,
	targets:  policies.Service | policies.Route | policies.Gateway,
	atomic:   true,
	accepted: "valid; mTLS and authorization are enforced by the Services' servers, extAuth, jwt and ipAccess by the Gateways' Envoy",
	list: func(res *resource.Resources) []policyObject {
		return objects(policies.SecurityPolicy, res.SecurityPolicies)
	},
	// A targeted Service's servers get this policy's security (mtls and
	// authorization fill it in).
	prepare: func(_ *translator, p policyObject, targets []*policies.Target) {
		for _, tg := range targets {
			if tg.Kind == "Service" {
				tg.Inbound = &ir.InboundSecurity{Mode: ir.MTLSDisable, Source: p.key.Namespace + "/" + p.key.Name}
			}
		}
	},
	// One policy per Service: the first (by namespace/name) applies.
	check: func(t *translator, p policyObject, targets []*policies.Target, report policies.Report) {
		for _, tg := range targets {
			if tg.Kind != "Service" {
				continue
			}
			k := tg.Namespace + "/" + tg.Name
			if prev, ok := t.inbound[k]; ok {
				report(tg.Field, fmt.Sprintf("Service %s already has SecurityPolicy %s; one policy per Service", k, prev.Source))
			}
		}
	},
	commit: func(t *translator, _ policyObject, targets []*policies.Target) {
		for _, tg := range targets {
			if tg.Inbound != nil {
				t.inbound[tg.Namespace+"/"+tg.Name] = tg.Inbound
			}
		}
		t.markSecured(targets)
	},
	// What a policy that is not in force was to protect fails closed.
	closed: (*translator).closeSecurityTargets,
}

var rateLimitPolicies = policyKind{
	name:     policies.RateLimitPolicy,
	targets:  policies.Service | policies.Route | policies.Gateway,
	atomic:   true,
	accepted: "valid; enforced by the targeted Gateways' Envoy (global rules through the rate-limit service)",
	list: func(res *resource.Resources) []policyObject {
		return objects(policies.RateLimitPolicy, res.RateLimitPolicies)
	},
}
