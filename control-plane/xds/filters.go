package xds

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
)

// The Gateway API filters of a route (Envoy proxies only).

func headerMods(out *routev3.Route, r *ir.Route) {
	if m := r.RequestHeaders; m != nil {
		out.RequestHeadersToAdd = headerOptions(m)
		out.RequestHeadersToRemove = m.Remove
	}
	if m := r.ResponseHeaders; m != nil {
		out.ResponseHeadersToAdd = headerOptions(m)
		out.ResponseHeadersToRemove = m.Remove
	}
}

func headerOptions(m *ir.HeaderMods) []*corev3.HeaderValueOption {
	var out []*corev3.HeaderValueOption
	for _, h := range m.Set {
		out = append(out, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: h.Name, Value: h.Value},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	for _, h := range m.Add {
		out = append(out, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: h.Name, Value: h.Value},
			AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD,
		})
	}
	return out
}

func redirect(r *ir.Redirect) *routev3.RedirectAction {
	out := &routev3.RedirectAction{HostRedirect: r.Hostname, PortRedirect: r.Port}
	if r.Scheme != "" {
		out.SchemeRewriteSpecifier = &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: r.Scheme}
	}
	switch {
	case r.FullPath != "":
		out.PathRewriteSpecifier = &routev3.RedirectAction_PathRedirect{PathRedirect: r.FullPath}
	case r.PrefixPath != "":
		out.PathRewriteSpecifier = &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: r.PrefixPath}
	}
	switch r.StatusCode {
	case 301:
		out.ResponseCode = routev3.RedirectAction_MOVED_PERMANENTLY
	case 303:
		out.ResponseCode = routev3.RedirectAction_SEE_OTHER
	case 307:
		out.ResponseCode = routev3.RedirectAction_TEMPORARY_REDIRECT
	case 308:
		out.ResponseCode = routev3.RedirectAction_PERMANENT_REDIRECT
	default:
		out.ResponseCode = routev3.RedirectAction_FOUND
	}
	return out
}

func rewrite(a *routev3.RouteAction, r *ir.Route) {
	rw := r.Rewrite
	if rw == nil {
		return
	}
	if rw.Hostname != "" {
		a.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: rw.Hostname}
	}
	switch {
	case rw.FullPath != "":
		// Replace the whole path, whatever it was.
		a.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{
			Pattern:      &matcherv3.RegexMatcher{Regex: "^/.*$"},
			Substitution: rw.FullPath,
		}
	case rw.PrefixPath != "":
		a.PrefixRewrite = rw.PrefixPath
	}
}
