package policies

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
)

// The policy kinds.
const (
	BackendPolicy   = "BackendPolicy"
	SecurityPolicy  = "SecurityPolicy"
	RateLimitPolicy = "RateLimitPolicy"
)

// Attach is a set of target kinds.
type Attach uint8

const (
	// Service is a core Service (all its traffic, or its servers).
	Service Attach = 1 << iota
	// Route is an HTTPRoute or a GRPCRoute.
	Route
	// Gateway is a Gateway (its Envoy listeners).
	Gateway
)

// AttachOf is the Attach of a targetRef kind (0 for an unknown kind).
func AttachOf(kind string) Attach {
	switch kind {
	case "Service":
		return Service
	case "HTTPRoute", "GRPCRoute":
		return Route
	case "Gateway":
		return Gateway
	}
	return 0
}

func (a Attach) String() string {
	var out []string
	for _, k := range []struct {
		a    Attach
		name string
	}{{Service, "Service"}, {Route, "HTTPRoute, GRPCRoute"}, {Gateway, "Gateway"}} {
		if a&k.a != 0 {
			out = append(out, k.name)
		}
	}
	return strings.Join(out, ", ")
}

// Report records a problem of the policy being translated, at a field
// (its path from the object's root: "spec.retry", "spec.targetRefs[1]").
// The problem goes into the translation's errors (with the file and the
// object) and into the policy's Accepted condition.
type Report func(field, message string)

// ReportErr reports each error of err (an errors.Join tree) under field.
// Feature validations return errors that start with their path within the
// feature ("backoff.maxInterval: 100ms is less than …"): that path is
// appended to field (spec.retry.backoff.maxInterval); an error without
// one is reported at field itself.
func ReportErr(report Report, field string, err error) {
	for _, e := range leaves(err) {
		msg := e.Error()
		if path, rest, ok := strings.Cut(msg, ": "); ok && fieldPath.MatchString(path) {
			report(field+"."+path, rest)
			continue
		}
		report(field, msg)
	}
}

// fieldPath is a path within a feature: backoff.maxInterval,
// rules[0].principals[1].
var fieldPath = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]*(\[\d+\])?(\.[A-Za-z][A-Za-z0-9]*(\[\d+\])?)*$`)

func leaves(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leaves(e)...)
		}
		return out
	}
	return []error{err}
}

// Target is what one targetRef of a policy resolved to: the IR objects a
// feature may change there. Translate builds it; a feature changes only
// what its Targets (and, read-only, its Env) give it.
type Target struct {
	// Kind (Service, HTTPRoute, GRPCRoute, Gateway), Namespace and Name of
	// the targeted object.
	Kind, Namespace, Name string
	// Field is the targetRef's path in the policy ("spec.targetRefs[1]").
	Field string

	// Clusters are the targeted Service's clusters, one per port
	// (sectionName picks one); Service targets only.
	Clusters []*ir.Cluster
	// Routes are the routes of the traffic to the target: a Service's own
	// (its clients' routes, and the Gateway routes whose every backend is
	// it), every copy of a route object's rules (east-west and on
	// Gateways), every route of a Gateway's listeners.
	Routes []*ir.Route
	// GatewayRoutes are those of Routes that Envoy Gateways apply: a route
	// object's copies on Gateway listeners, a Gateway's routes.
	GatewayRoutes []*ir.Route
	// Listeners are the Envoy listeners of a Gateway target, or, for a
	// route target, the Gateway listeners that hold its GatewayRoutes;
	// sorted by name.
	Listeners []*ir.Listener
	// Inbound is the security of a targeted Service's servers, which a
	// SecurityPolicy sets (one policy per Service); nil otherwise.
	Inbound *ir.InboundSecurity

	// Claim sets one thing (what) on an IR object through apply, unless a
	// policy that takes precedence has set it already. BackendPolicy's
	// precedence (route over Service, then the oldest policy) is decided
	// there; other kinds apply at once. Translate sets it.
	Claim func(obj any, what string, apply func())
}

func (t *Target) String() string { return t.Kind + " " + t.Namespace + "/" + t.Name }

// Env is what a feature may look up beyond its targets. It is read-only:
// a feature changes the IR only through its Targets (and, in Finish, the
// Gateways' listeners).
type Env interface {
	// Port is the cluster of a Service's port (nil: no such Service or
	// port).
	Port(namespace, service string, port uint32) *ir.Cluster
	// Clusters are the clusters of every port of a Service (nil: no such
	// Service).
	Clusters(namespace, service string) []*ir.Cluster
	// Cluster is the cluster of that name (nil: none).
	Cluster(name string) *ir.Cluster
	// Gateways are every Gateway with its Envoy listeners, sorted by
	// namespace and name.
	Gateways() []*GatewayListeners
}

// GatewayListeners are one Gateway's Envoy listeners, for the features
// that finish their work there.
type GatewayListeners struct {
	Namespace, Name string
	// Listeners are its Envoy listeners (one per port), sorted by name.
	Listeners []*ir.Listener
	// Conflict records that the policies applied ask of the Gateway what
	// it cannot do: an error at field, and a condition of that type (True,
	// reason Conflicted) in the Gateway's status.
	Conflict func(field, condition, message string)
}

// Feature is one field of a policy's spec and its whole story: where it
// may attach, how it is validated and how it applies to the IR. Define
// implements it; translate uses nothing else.
type Feature interface {
	// Info names the feature, its policy kind and where it may attach.
	Info() Meta
	// Present reports whether the policy (of the feature's kind) sets it.
	Present(policy any) bool
	// Refuse reports a target of a kind the feature cannot attach to.
	Refuse(t *Target, report Report)
	// Validate validates the feature of a policy against the targets it
	// may attach to, reporting every problem, and returns what ApplyTo
	// applies (ok false: nothing to apply).
	Validate(policy any, targets []*Target, env Env, report Report, failed func() bool) (value any, ok bool)
	// ApplyTo applies a validated value to one target.
	ApplyTo(value any, t *Target, env Env)
	// Complete finishes the feature's work once every policy of its kind
	// has applied (on the Gateways' listeners, say).
	Complete(env Env)
}

// Meta describes a feature.
type Meta struct {
	// Name is the feature's name, the field of the policy's spec it reads
	// ("retry", "extAuth"), or a name for several ("rateLimits").
	Name string
	// Kind is the policy kind it belongs to (BackendPolicy, …).
	Kind string
	// Attaches is where it may attach.
	Attaches Attach
}

// Define is a feature from typed functions: P is the policy type
// (*v1alpha1.BackendPolicy), F the type of the spec field it reads, V the
// value it builds for Apply.
type Define[P, F, V any] struct {
	Meta
	// Field is the feature's part of a policy (nil: not set).
	Field func(P) *F
	// Refusal is the field and message that refuse a target the feature
	// cannot attach to.
	Refusal func(t *Target) (field, message string)
	// Build validates the field (see Context) and returns the value to
	// apply; false: nothing to apply (the problems are reported).
	Build func(spec *F, c Context[P]) (V, bool)
	// Apply applies the value to one target (nil: nothing to do per
	// target).
	Apply func(v V, t *Target, env Env)
	// Finish, when set, runs once every policy of the kind has applied.
	Finish func(env Env)
}

// Context is what a feature's Build sees.
type Context[P any] struct {
	Policy P
	// Targets are the policy's resolved targets the feature may attach to.
	Targets []*Target
	Env     Env
	// Report records a problem (see Report).
	Report Report
	// Failed reports whether any problem of the policy has been reported
	// so far (by this or an earlier feature, or target resolution): a
	// check that only makes sense on an otherwise valid policy asks it.
	Failed func() bool
}

var _ Feature = Define[any, struct{}, struct{}]{}

// Info implements Feature.
func (d Define[P, F, V]) Info() Meta { return d.Meta }

// Present implements Feature.
func (d Define[P, F, V]) Present(policy any) bool {
	p, ok := policy.(P)
	return ok && d.Field(p) != nil
}

// Refuse implements Feature.
func (d Define[P, F, V]) Refuse(t *Target, report Report) {
	if d.Refusal != nil {
		report(d.Refusal(t))
		return
	}
	report(t.Field, fmt.Sprintf("%s cannot apply to a %s (it attaches to: %s)", d.Name, t.Kind, d.Attaches))
}

// Validate implements Feature.
func (d Define[P, F, V]) Validate(policy any, targets []*Target, env Env, report Report, failed func() bool) (any, bool) {
	p := policy.(P)
	v, ok := d.Build(d.Field(p), Context[P]{Policy: p, Targets: targets, Env: env, Report: report, Failed: failed})
	return v, ok
}

// ApplyTo implements Feature.
func (d Define[P, F, V]) ApplyTo(value any, t *Target, env Env) {
	if d.Apply != nil {
		d.Apply(value.(V), t, env)
	}
}

// Complete implements Feature.
func (d Define[P, F, V]) Complete(env Env) {
	if d.Finish != nil {
		d.Finish(env)
	}
}

// Check adapts a feature's validation (its spec in, the value to apply or
// errors that start with their path out) to Define.Build: each error is
// reported under field.
func Check[P, F, V any](field string, validate func(*F) (V, error)) func(*F, Context[P]) (V, bool) {
	return func(spec *F, c Context[P]) (V, bool) {
		v, err := validate(spec)
		if err != nil {
			ReportErr(c.Report, field, err)
			var zero V
			return zero, false
		}
		return v, true
	}
}

// ServiceOnly refuses route targets of a feature that configures a
// Service's clusters (BackendPolicy's cluster features).
func ServiceOnly(field string) func(*Target) (string, string) {
	return func(*Target) (string, string) {
		return field, "applies to a Service: target the Service, not the route"
	}
}

// GatewayOnly refuses the targets of a feature that Envoy Gateways apply
// (verb: "applied", "enforced").
func GatewayOnly(feature, verb string) func(*Target) (string, string) {
	return func(t *Target) (string, string) {
		return t.Field, fmt.Sprintf("%s is %s by Envoy Gateways; a %s cannot apply it (target the Gateway)", feature, verb, t.Kind)
	}
}

// ServersOnly refuses the targets of a feature that the Services' own
// servers enforce.
func ServersOnly(feature string) func(*Target) (string, string) {
	return func(t *Target) (string, string) {
		return t.Field, fmt.Sprintf("%s is enforced by the Services' servers; a %s cannot apply it (target the Service)", feature, t.Kind)
	}
}
