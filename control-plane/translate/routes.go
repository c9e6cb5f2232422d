package translate

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/resource"
)

// A route entry waiting to be ordered into a listener.
type routeEntry struct {
	route *ir.Route
	// hostnames of the route (HTTPRoute and GRPCRoute spec.hostnames), for
	// gateway listeners; east-west routes ignore them.
	hostnames []string
	// envoyOnly says why only Envoy proxies can apply the rule (filters,
	// query parameters); empty when proxyless clients can too.
	envoyOnly string
	// Precedence keys (Gateway API): larger first, then older route, then
	// namespace/name, then rule and match order.
	exactPath   bool
	pathLen     int
	serviceLen  int
	methodLen   int
	headers     int
	created     time.Time
	owner       string
	rule, match int
}

// attachTo is where a route object attaches: Service ports (east-west,
// GAMMA) and Gateway listeners.
type attachTo struct {
	ports     []*servicePort
	listeners []*gwListener
}

func (a attachTo) empty() bool { return len(a.ports) == 0 && len(a.listeners) == 0 }

// routes attaches every route to its parents, orders each listener's routes
// by Gateway API precedence, and ends every Service listener with a default
// route to the Service itself.
func (t *translator) routes() {
	svcEntries := map[*servicePort][]routeEntry{}
	gwEntries := map[*gwListener][]routeEntry{}
	for _, r := range t.res.GRPCRoutes {
		key := resource.KeyOf("GRPCRoute", r)
		to := t.parents(key, r.Namespace, "GRPCRoute", r.Spec.ParentRefs)
		if to.empty() {
			continue
		}
		built, refsOK := t.grpcRules(key, r)
		t.attach(key, to, built, svcEntries, gwEntries)
		t.accept(key, refsOK)
	}
	for _, r := range t.res.HTTPRoutes {
		key := resource.KeyOf("HTTPRoute", r)
		to := t.parents(key, r.Namespace, "HTTPRoute", r.Spec.ParentRefs)
		if to.empty() {
			continue
		}
		built, refsOK := t.httpRules(key, r)
		t.attach(key, to, built, svcEntries, gwEntries)
		t.accept(key, refsOK)
	}
	for _, s := range t.sortedServices() {
		for _, sp := range s.ports {
			list := svcEntries[sp]
			sort.SliceStable(list, func(i, j int) bool { return list[i].before(list[j]) })
			vh := &ir.VirtualHost{Name: sp.listener.Name, Domains: []string{"*"}}
			for _, e := range list {
				vh.Routes = append(vh.Routes, e.route)
			}
			// Requests no route matches go to the Service itself, as they
			// would with no route attached.
			vh.Routes = append(vh.Routes, &ir.Route{
				Name:     sp.listener.Name + "/default",
				Source:   fmt.Sprintf("Service %s/%s port %d", s.obj.Namespace, s.obj.Name, sp.port),
				Match:    ir.Match{PathPrefix: "/"},
				Backends: []ir.WeightedBackend{{Cluster: sp.cluster.Name, Weight: 1}},
			})
			sp.listener.VirtualHosts = []*ir.VirtualHost{vh}
		}
	}
	t.finishGateways(gwEntries)
}

func (a routeEntry) before(b routeEntry) bool {
	switch {
	case a.exactPath != b.exactPath:
		return a.exactPath
	case a.pathLen != b.pathLen:
		return a.pathLen > b.pathLen
	case a.serviceLen != b.serviceLen:
		return a.serviceLen > b.serviceLen
	case a.methodLen != b.methodLen:
		return a.methodLen > b.methodLen
	case a.headers != b.headers:
		return a.headers > b.headers
	case !a.created.Equal(b.created):
		return a.created.Before(b.created)
	case a.owner != b.owner:
		return a.owner < b.owner
	case a.rule != b.rule:
		return a.rule < b.rule
	default:
		return a.match < b.match
	}
}

// parents resolves a route's parentRefs.
func (t *translator) parents(key resource.Key, ns, routeKind string, parents []gwapiv1.ParentReference) attachTo {
	var out attachTo
	for i, p := range parents {
		field := fmt.Sprintf("spec.parentRefs[%d]", i)
		group, kind := "gateway.networking.k8s.io", "Gateway"
		if p.Group != nil {
			group = string(*p.Group)
		}
		if p.Kind != nil {
			kind = string(*p.Kind)
		}
		if group == "gateway.networking.k8s.io" && kind == "Gateway" {
			out.listeners = append(out.listeners, t.gatewayParent(key, field, ns, routeKind, p)...)
			continue
		}
		if group != "" || kind != "Service" {
			t.fail(key, field, "parent %s/%s is not supported (a Gateway, or a core Service for east-west routes)", group, kind)
			t.status.Set(key, t.res.Origin(key), Condition{Type: CondAccepted, Status: "False", Reason: ReasonInvalidKind, Message: field + ": unsupported parent kind " + kind})
			continue
		}
		pns := ns
		if p.Namespace != nil {
			pns = string(*p.Namespace)
		}
		if pns != ns {
			t.fail(key, field+".namespace", "consumer routes (a parent Service in another namespace) are not supported yet; put the route in namespace %s", pns)
			t.status.Set(key, t.res.Origin(key), Condition{Type: CondAccepted, Status: "False", Reason: ReasonUnsupportedValue, Message: field + ": consumer routes are not supported yet"})
			continue
		}
		s := t.svcs[svcKey{pns, string(p.Name)}]
		if s == nil {
			t.fail(key, field+".name", "Service %s/%s not found", pns, p.Name)
			t.status.Set(key, t.res.Origin(key), Condition{Type: CondAccepted, Status: "False", Reason: ReasonNoMatchingParent, Message: fmt.Sprintf("%s: Service %s/%s not found", field, pns, p.Name)})
			continue
		}
		if p.Port != nil {
			sp := s.port(uint32(*p.Port))
			if sp == nil {
				t.fail(key, field+".port", "Service %s/%s has no port %d", pns, p.Name, *p.Port)
				t.status.Set(key, t.res.Origin(key), Condition{Type: CondAccepted, Status: "False", Reason: ReasonNoMatchingParent, Message: fmt.Sprintf("%s.port: Service %s/%s has no port %d", field, pns, p.Name, *p.Port)})
				continue
			}
			out.ports = append(out.ports, sp)
			continue
		}
		out.ports = append(out.ports, s.ports...)
	}
	return out
}

// backends resolves backendRefs to weighted clusters. A bad reference is
// reported and left out; the others keep their weights.
func (t *translator) backends(key resource.Key, ns string, field string, refs []gwapiv1.BackendRef) ([]ir.WeightedBackend, bool) {
	var out []ir.WeightedBackend
	ok := true
	for i, b := range refs {
		f := fmt.Sprintf("%s[%d]", field, i)
		group, kind := "", "Service"
		if b.Group != nil {
			group = string(*b.Group)
		}
		if b.Kind != nil {
			kind = string(*b.Kind)
		}
		bns := ns
		if b.Namespace != nil {
			bns = string(*b.Namespace)
		}
		weight := uint32(1)
		if b.Weight != nil {
			if *b.Weight < 0 || *b.Weight > 1000000 {
				t.fail(key, f+".weight", "%d is out of range (0-1000000)", *b.Weight)
				ok = false
				continue
			}
			weight = uint32(*b.Weight)
		}
		switch {
		case group != "" || kind != "Service":
			t.fail(key, f, "backend kind %s/%s is not supported (core Service)", group, kind)
			t.status.Set(key, t.res.Origin(key), Condition{Type: CondResolvedRefs, Status: "False", Reason: ReasonInvalidKind, Message: f + ": unsupported backend kind " + kind})
			ok = false
			continue
		case bns != ns && !t.granted(key.Kind, ns, bns, string(b.Name)):
			msg := fmt.Sprintf("Service %s/%s is in another namespace, and no ReferenceGrant in %s lets %s of namespace %s refer to it", bns, b.Name, bns, key.Kind, ns)
			t.fail(key, f+".namespace", "%s", msg)
			t.status.Set(key, t.res.Origin(key), Condition{Type: CondResolvedRefs, Status: "False", Reason: ReasonRefNotPermitted, Message: f + ": " + msg})
			ok = false
			continue
		case b.Port == nil:
			t.fail(key, f+".port", "required for a Service backend")
			t.status.Set(key, t.res.Origin(key), Condition{Type: CondResolvedRefs, Status: "False", Reason: ReasonInvalid, Message: f + ".port: required"})
			ok = false
			continue
		}
		s := t.svcs[svcKey{bns, string(b.Name)}]
		var sp *servicePort
		if s != nil {
			sp = s.port(uint32(*b.Port))
		}
		if sp == nil {
			t.fail(key, f, "Service %s/%s port %d not found", bns, b.Name, *b.Port)
			t.status.Set(key, t.res.Origin(key), Condition{Type: CondResolvedRefs, Status: "False", Reason: ReasonBackendNotFound, Message: fmt.Sprintf("%s: Service %s/%s port %d not found", f, bns, b.Name, *b.Port)})
			ok = false
			continue
		}
		if weight == 0 {
			continue
		}
		out = append(out, ir.WeightedBackend{Cluster: sp.cluster.Name, Weight: weight})
	}
	return out, ok
}

func (t *translator) accept(key resource.Key, refsOK bool) {
	origin := t.res.Origin(key)
	t.status.Set(key, origin, Condition{Type: CondAccepted, Status: "True", Reason: ReasonAccepted, Message: "attached to its parents"})
	if refsOK {
		t.status.Set(key, origin, Condition{Type: CondResolvedRefs, Status: "True", Reason: ReasonResolvedRefs, Message: "every backend reference resolved"})
	}
}

// grpcRules turns a GRPCRoute's rules into route entries.
func (t *translator) grpcRules(key resource.Key, r *gwapiv1.GRPCRoute) ([]routeEntry, bool) {
	refsOK := true
	var built []routeEntry
	for ri, rule := range r.Spec.Rules {
		rfield := fmt.Sprintf("spec.rules[%d]", ri)
		refs := make([]gwapiv1.BackendRef, len(rule.BackendRefs))
		for i, b := range rule.BackendRefs {
			refs[i] = b.BackendRef
		}
		backends, ok := t.backends(key, r.Namespace, rfield+".backendRefs", refs)
		refsOK = refsOK && ok
		if len(backends) == 0 {
			continue
		}
		base := ir.Route{Backends: backends, GRPC: true}
		built = append(built, matchEntries(t, key, &r.ObjectMeta, "GRPCRoute", rfield, ri, rule.Matches, grpcMatch, base, func(e *routeEntry) {
			if len(rule.Filters) > 0 {
				e.envoyOnly = "filters"
				t.grpcFilters(key, rfield+".filters", r.Namespace, rule.Filters, e.route)
			}
			e.hostnames = hostnames(r.Spec.Hostnames)
		})...)
	}
	return built, refsOK
}

// attach gives each parent its own copy of a route's entries (policies may
// then change one listener's routes without touching another's) and indexes
// them by route object.
func (t *translator) attach(key resource.Key, to attachTo, built []routeEntry, svcEntries map[*servicePort][]routeEntry, gwEntries map[*gwListener][]routeEntry) {
	clone := func(e routeEntry) routeEntry {
		r := *e.route
		e.route = &r
		t.routeIndex[key] = append(t.routeIndex[key], &r)
		return e
	}
	for _, sp := range to.ports {
		sp.routed = true
		for _, e := range built {
			if e.envoyOnly != "" {
				// Proxyless clients cannot apply these; rather than ignore
				// them silently, the rule is left out of east-west listeners.
				t.fail(key, "spec.rules", "%s: %s are applied by Envoy gateways only; proxyless clients of Service %s/%s cannot, so this rule is not attached to it", e.route.Source, e.envoyOnly, sp.cluster.Namespace, sp.cluster.Service)
				continue
			}
			svcEntries[sp] = append(svcEntries[sp], clone(e))
		}
	}
	for _, l := range to.listeners {
		if t.attachedTo[l] == nil {
			t.attachedTo[l] = map[resource.Key]bool{}
		}
		t.attachedTo[l][key] = true
		for _, e := range built {
			c := clone(e)
			gwEntries[l] = append(gwEntries[l], c)
			t.gatewayRoutes = append(t.gatewayRoutes, c.route)
		}
	}
}

func hostnames(hs []gwapiv1.Hostname) []string {
	out := make([]string, 0, len(hs))
	for _, h := range hs {
		out = append(out, strings.ToLower(string(h)))
	}
	return out
}

// gwDuration parses an optional Gateway API duration.
func gwDuration(d *gwapiv1.Duration) (*ir.Duration, error) {
	if d == nil {
		return nil, nil
	}
	v, err := time.ParseDuration(string(*d))
	if err != nil || v < 0 {
		return nil, fmt.Errorf("%q is not a duration (examples: 500ms, 10s, 1m)", string(*d))
	}
	return ir.D(v), nil
}

// matchEntries makes one route entry per match of a rule (one matching
// everything when the rule has none), from base, then lets finish add what
// depends on the route kind.
func matchEntries[M any](t *translator, key resource.Key, meta *metav1.ObjectMeta, kind, rfield string, ri int, matches []M,
	convert func(M) (ir.Match, routeEntry, error), base ir.Route, finish func(*routeEntry)) []routeEntry {
	if len(matches) == 0 {
		matches = make([]M, 1)
	}
	var out []routeEntry
	for mi, m := range matches {
		mfield := fmt.Sprintf("%s.matches[%d]", rfield, mi)
		match, e, err := convert(m)
		if err != nil {
			t.fail(key, mfield, "%v", err)
			t.status.Set(key, t.res.Origin(key), Condition{Type: CondAccepted, Status: "False", Reason: ReasonInvalid, Message: mfield + ": " + err.Error()})
			continue
		}
		r := base
		r.Name = fmt.Sprintf("%s/%s/rule/%d/match/%d", meta.Namespace, meta.Name, ri, mi)
		r.Source = fmt.Sprintf("%s %s/%s rule %d match %d (%s)", kind, meta.Namespace, meta.Name, ri, mi, t.res.Origin(key))
		r.Match = match
		e.route = &r
		e.created, e.owner, e.rule, e.match = meta.CreationTimestamp.Time, meta.Namespace+"/"+meta.Name, ri, mi
		finish(&e)
		out = append(out, e)
	}
	return out
}

// grpcMatch turns a GRPCRouteMatch into a path and header match.
func grpcMatch(m gwapiv1.GRPCRouteMatch) (ir.Match, routeEntry, error) {
	var out ir.Match
	var e routeEntry
	out.PathPrefix = "/"
	if mm := m.Method; mm != nil {
		svc, method := deref(mm.Service), deref(mm.Method)
		regex := mm.Type != nil && *mm.Type == gwapiv1.GRPCMethodMatchRegularExpression
		if svc == "" && method == "" {
			return out, e, fmt.Errorf("method: set service, method or both")
		}
		e.serviceLen, e.methodLen = len(svc), len(method)
		out.PathPrefix = ""
		switch {
		case regex:
			s, m := svc, method
			if s == "" {
				s = `[^/]+`
			}
			if m == "" {
				m = `[^/]+`
			}
			for _, p := range []string{s, m} {
				if _, err := regexp.Compile(p); err != nil {
					return out, e, fmt.Errorf("method: invalid regular expression %q: %v", p, err)
				}
			}
			out.PathRegex = "/" + s + "/" + m
		case svc != "" && method != "":
			out.PathExact = "/" + svc + "/" + method
			e.exactPath = true
		case svc != "":
			out.PathPrefix = "/" + svc + "/"
		default:
			out.PathRegex = `/[^/]+/` + regexp.QuoteMeta(method)
		}
	}
	for i, h := range m.Headers {
		regex := h.Type != nil && *h.Type == gwapiv1.GRPCHeaderMatchRegularExpression
		hm, err := headerMatch(string(h.Name), regex, h.Value)
		if err != nil {
			return out, e, fmt.Errorf("headers[%d]: %v", i, err)
		}
		out.Headers = append(out.Headers, hm)
	}
	e.headers = len(out.Headers)
	return out, e, nil
}

func headerMatch(name string, regex bool, value string) (ir.HeaderMatch, error) {
	hm := ir.HeaderMatch{Name: strings.ToLower(name)}
	if regex {
		if _, err := regexp.Compile(value); err != nil {
			return hm, fmt.Errorf("invalid regular expression %q: %v", value, err)
		}
		hm.Regex = value
		return hm, nil
	}
	hm.Exact = value
	return hm, nil
}

// httpRules turns an HTTPRoute's rules into route entries.
func (t *translator) httpRules(key resource.Key, r *gwapiv1.HTTPRoute) ([]routeEntry, bool) {
	refsOK := true
	var built []routeEntry
	for ri, rule := range r.Spec.Rules {
		rfield := fmt.Sprintf("spec.rules[%d]", ri)
		refs := make([]gwapiv1.BackendRef, len(rule.BackendRefs))
		for i, b := range rule.BackendRefs {
			refs[i] = b.BackendRef
		}
		backends, ok := t.backends(key, r.Namespace, rfield+".backendRefs", refs)
		refsOK = refsOK && ok
		redirects := slices.ContainsFunc(rule.Filters, func(f gwapiv1.HTTPRouteFilter) bool { return f.Type == gwapiv1.HTTPRouteFilterRequestRedirect })
		if len(backends) == 0 && !redirects {
			continue
		}
		var timeout, perTry *ir.Duration
		if to := rule.Timeouts; to != nil {
			var err error
			if timeout, err = gwDuration(to.Request); err != nil {
				t.fail(key, rfield+".timeouts.request", "%v", err)
				continue
			}
			if perTry, err = gwDuration(to.BackendRequest); err != nil {
				t.fail(key, rfield+".timeouts.backendRequest", "%v", err)
				continue
			}
		}
		base := ir.Route{Backends: backends, Timeout: timeout, PerTryTimeout: perTry}
		built = append(built, matchEntries(t, key, &r.ObjectMeta, "HTTPRoute", rfield, ri, rule.Matches, httpMatch, base, func(e *routeEntry) {
			if len(e.route.Match.QueryParams) > 0 {
				e.envoyOnly = "query parameter matches"
			}
			if len(rule.Filters) > 0 {
				e.envoyOnly = "filters"
				t.httpFilters(key, rfield+".filters", r.Namespace, rule.Filters, e.route)
			}
			e.hostnames = hostnames(r.Spec.Hostnames)
		})...)
	}
	return built, refsOK
}

func httpMatch(m gwapiv1.HTTPRouteMatch) (ir.Match, routeEntry, error) {
	var out ir.Match
	var e routeEntry
	out.PathPrefix = "/"
	if p := m.Path; p != nil {
		v := deref(p.Value)
		if v == "" {
			v = "/"
		}
		typ := gwapiv1.PathMatchPathPrefix
		if p.Type != nil {
			typ = *p.Type
		}
		out.PathPrefix = ""
		switch typ {
		case gwapiv1.PathMatchExact:
			out.PathExact = v
			e.exactPath = true
		case gwapiv1.PathMatchRegularExpression:
			if _, err := regexp.Compile(v); err != nil {
				return out, e, fmt.Errorf("path: invalid regular expression %q: %v", v, err)
			}
			out.PathRegex = v
		default:
			out.PathPrefix = v
		}
		e.pathLen = len(v)
	}
	if m.Method != nil {
		out.Headers = append(out.Headers, ir.HeaderMatch{Name: ":method", Exact: string(*m.Method)})
	}
	for i, h := range m.Headers {
		regex := h.Type != nil && *h.Type == gwapiv1.HeaderMatchRegularExpression
		hm, err := headerMatch(string(h.Name), regex, h.Value)
		if err != nil {
			return out, e, fmt.Errorf("headers[%d]: %v", i, err)
		}
		out.Headers = append(out.Headers, hm)
	}
	for i, q := range m.QueryParams {
		regex := q.Type != nil && *q.Type == gwapiv1.QueryParamMatchRegularExpression
		qm, err := headerMatch(string(q.Name), regex, q.Value)
		if err != nil {
			return out, e, fmt.Errorf("queryParams[%d]: %v", i, err)
		}
		qm.Name = string(q.Name) // query parameter names are case-sensitive
		out.QueryParams = append(out.QueryParams, qm)
	}
	e.headers = len(out.Headers)
	return out, e, nil
}

func deref[T ~string](p *T) string {
	if p == nil {
		return ""
	}
	return string(*p)
}
