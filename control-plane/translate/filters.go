package translate

import (
	"fmt"
	"strings"

	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/resource"
)

// httpFilters applies an HTTPRoute rule's filters to its route.
func (t *translator) httpFilters(key resource.Key, field, ns string, filters []gwapiv1.HTTPRouteFilter, r *ir.Route) {
	for i, f := range filters {
		ff := fmt.Sprintf("%s[%d]", field, i)
		switch f.Type {
		case gwapiv1.HTTPRouteFilterRequestHeaderModifier:
			r.RequestHeaders = headerMods(f.RequestHeaderModifier)
		case gwapiv1.HTTPRouteFilterResponseHeaderModifier:
			r.ResponseHeaders = headerMods(f.ResponseHeaderModifier)
		case gwapiv1.HTTPRouteFilterRequestRedirect:
			rd := f.RequestRedirect
			if rd == nil {
				t.fail(key, ff+".requestRedirect", "required when type is RequestRedirect")
				continue
			}
			red := &ir.Redirect{Scheme: deref(rd.Scheme), Hostname: deref(rd.Hostname)}
			if rd.Port != nil {
				red.Port = uint32(*rd.Port)
			}
			if rd.StatusCode != nil {
				red.StatusCode = uint32(*rd.StatusCode)
			}
			if p := rd.Path; p != nil {
				red.FullPath, red.PrefixPath = deref(p.ReplaceFullPath), deref(p.ReplacePrefixMatch)
			}
			r.Redirect = red
			r.Backends = nil
		case gwapiv1.HTTPRouteFilterURLRewrite:
			rw := f.URLRewrite
			if rw == nil {
				t.fail(key, ff+".urlRewrite", "required when type is URLRewrite")
				continue
			}
			out := &ir.Rewrite{Hostname: deref(rw.Hostname)}
			if p := rw.Path; p != nil {
				out.FullPath, out.PrefixPath = deref(p.ReplaceFullPath), deref(p.ReplacePrefixMatch)
				if out.PrefixPath != "" && r.Match.PathPrefix == "" {
					t.fail(key, ff+".urlRewrite.path", "ReplacePrefixMatch needs a PathPrefix match")
					continue
				}
			}
			r.Rewrite = out
		case gwapiv1.HTTPRouteFilterRequestMirror:
			if m := t.mirror(key, ff+".requestMirror", ns, f.RequestMirror); m != nil {
				r.Mirrors = append(r.Mirrors, *m)
			}
		default:
			t.fail(key, ff+".type", "%s is not supported", f.Type)
		}
	}
}

// grpcFilters applies a GRPCRoute rule's filters to its route.
func (t *translator) grpcFilters(key resource.Key, field, ns string, filters []gwapiv1.GRPCRouteFilter, r *ir.Route) {
	for i, f := range filters {
		ff := fmt.Sprintf("%s[%d]", field, i)
		switch f.Type {
		case gwapiv1.GRPCRouteFilterRequestHeaderModifier:
			r.RequestHeaders = headerMods(f.RequestHeaderModifier)
		case gwapiv1.GRPCRouteFilterResponseHeaderModifier:
			r.ResponseHeaders = headerMods(f.ResponseHeaderModifier)
		case gwapiv1.GRPCRouteFilterRequestMirror:
			if m := t.mirror(key, ff+".requestMirror", ns, f.RequestMirror); m != nil {
				r.Mirrors = append(r.Mirrors, *m)
			}
		default:
			t.fail(key, ff+".type", "%s is not supported", f.Type)
		}
	}
}

func headerMods(m *gwapiv1.HTTPHeaderFilter) *ir.HeaderMods {
	if m == nil {
		return nil
	}
	out := &ir.HeaderMods{}
	for _, h := range m.Set {
		out.Set = append(out.Set, ir.Header{Name: strings.ToLower(string(h.Name)), Value: h.Value})
	}
	for _, h := range m.Add {
		out.Add = append(out.Add, ir.Header{Name: strings.ToLower(string(h.Name)), Value: h.Value})
	}
	for _, h := range m.Remove {
		out.Remove = append(out.Remove, strings.ToLower(h))
	}
	return out
}

func (t *translator) mirror(key resource.Key, field, ns string, m *gwapiv1.HTTPRequestMirrorFilter) *ir.Mirror {
	if m == nil {
		t.fail(key, field, "required when type is RequestMirror")
		return nil
	}
	wb, ok := t.backends(key, ns, field+".backendRef", []gwapiv1.BackendRef{{BackendObjectReference: m.BackendRef}})
	if !ok || len(wb) == 0 {
		return nil
	}
	out := &ir.Mirror{Cluster: wb[0].Cluster, Percent: 100}
	if m.Percent != nil {
		out.Percent = uint32(*m.Percent)
	}
	return out
}
