// Package status is the control plane's last stage: it turns translate's
// statuses (Accepted, ResolvedRefs, each with the exact validation message)
// and the server's record (what each proxy identity was published, what
// each of its nodes ACKed or NACKed, per type and version) into one typed
// model, the Report. The admin endpoint (/status), `bulkhead status` and
// the Kubernetes status writer read that model; none of them computes a
// condition of its own.
package status

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/bulkhead-mesh/bulkhead/control-plane/resource"
	"github.com/bulkhead-mesh/bulkhead/control-plane/server"
	"github.com/bulkhead-mesh/bulkhead/control-plane/translate"
	"github.com/bulkhead-mesh/bulkhead/control-plane/xds"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

// Report is the status of every input object and of every proxy.
type Report struct {
	// Objects, sorted by kind, namespace and name: translate's conditions,
	// then Programmed.
	Objects []Object `json:"objects"`
	// Problems lists the translation errors (file, object, field) and the
	// routes left out of a proxy's configuration.
	Problems []string `json:"problems,omitempty"`
	// Proxies are the proxy identities with a connected node, sorted.
	Proxies []Proxy `json:"proxies"`
	// Listeners are the attached-route counts of every Gateway listener.
	Listeners []Listener `json:"listeners,omitempty"`
}

// Listener is one listener of a Gateway and how many routes attach to it.
type Listener struct {
	Gateway        string `json:"gateway"` // namespace/name
	Name           string `json:"name"`
	AttachedRoutes int32  `json:"attachedRoutes"`
}

// Object is the status of one input object.
type Object = translate.ObjectStatus

// Condition is one condition of an object, as in Kubernetes.
type Condition = translate.Condition

// CondProgrammed is true when every connected node runs the configuration
// that carries the object.
const CondProgrammed = "Programmed"

// Reasons of Programmed.
const (
	ReasonProgrammed       = "Programmed"
	ReasonNoProxyConnected = "NoProxyConnected"
	ReasonPending          = "Pending"
	ReasonRejectedByProxy  = "RejectedByProxy"
	ReasonInvalid          = "Invalid"
)

// Proxy is what one proxy identity was published and what its nodes run.
type Proxy struct {
	Proxy string `json:"proxy"`
	// Published is the version of each resource type last published.
	Published map[string]string `json:"published,omitempty"`
	// Pending is why the latest translation is not published to it (the
	// proxy keeps its last good configuration).
	Pending string `json:"pending,omitempty"`
	// Rejected is the last NACK of the published configuration by one of
	// its nodes, with the node's own words.
	Rejected string `json:"rejected,omitempty"`
	// InSync counts the nodes that ACKed every published type.
	InSync int    `json:"inSync"`
	Nodes  []Node `json:"nodes"`
}

// Node is one connected node of a proxy identity.
type Node struct {
	NodeID string `json:"nodeID"`
	// InSync: it ACKed the published version of every type it subscribes
	// to.
	InSync bool `json:"inSync"`
	// Types it subscribes to, in push order.
	Types []Type `json:"types"`
}

// Type is what a node did with one resource type.
type Type struct {
	Type      string    `json:"type"`
	Published string    `json:"published,omitempty"`
	Acked     string    `json:"acked,omitempty"`
	Nacked    string    `json:"nacked,omitempty"`
	NackError string    `json:"nackError,omitempty"`
	At        time.Time `json:"at"`
}

// Compute builds the report of a translation and of what the proxies did
// with it. An object's Programmed looks at the proxies its configuration
// reaches (translate.Reach): True when every connected node of them has
// ACKed the versions published from the translation; False when one
// rejected them (the NACK's text is the message), when the configuration
// could not be published, or when a Gateway it reaches (or every proxy it
// reaches) has no connected node (named in the message); Unknown while
// nodes have not answered yet. An object that is not Accepted is never
// Programmed; one that configures no proxy (a GatewayClass, a
// ReferenceGrant) has no Programmed condition.
func Compute(res *translate.Result, proxies []server.ProxyRecord, nodes []server.NodeState) Report {
	rep := Report{}
	// Copies: the translation's statuses are shared and must not grow.
	for _, o := range res.Status.Objects() {
		c := *o
		c.Conditions = slices.Clone(o.Conditions)
		rep.Objects = append(rep.Objects, c)
	}
	for _, e := range res.Errors {
		rep.Problems = append(rep.Problems, e.Error())
	}
	records := map[string]server.ProxyRecord{}
	for _, p := range proxies {
		records[p.ID.String()] = p
	}
	byProxy := map[string]*Proxy{}
	for _, n := range nodes {
		ps := byProxy[n.Proxy]
		if ps == nil {
			ps = &Proxy{Proxy: n.Proxy}
			byProxy[n.Proxy] = ps
			if rec, ok := records[n.Proxy]; ok {
				if rec.Pending != nil {
					ps.Pending = rec.Pending.Error()
				}
				for _, w := range rec.Warnings {
					if !slices.Contains(rep.Problems, w.Error()) {
						rep.Problems = append(rep.Problems, w.Error())
					}
				}
				if rec.Versions != nil {
					ps.Published = map[string]string{}
					for typ, v := range rec.Versions {
						ps.Published[xds.TypeName(typ)] = v
					}
				}
			}
		}
		node := nodeStatus(n, records[n.Proxy].Versions)
		if node.InSync {
			ps.InSync++
		}
		for _, t := range node.Types {
			if t.Nacked != "" && t.Nacked == t.Published {
				ps.Rejected = fmt.Sprintf("node %s rejected %s version %s: %s", n.NodeID, t.Type, t.Nacked, t.NackError)
			}
		}
		ps.Nodes = append(ps.Nodes, node)
	}
	for _, ps := range byProxy {
		rep.Proxies = append(rep.Proxies, *ps)
	}
	sort.Slice(rep.Proxies, func(i, j int) bool { return rep.Proxies[i].Proxy < rep.Proxies[j].Proxy })

	for gw, counts := range res.AttachedRoutes {
		for name, n := range counts {
			rep.Listeners = append(rep.Listeners, Listener{Gateway: gw.Namespace + "/" + gw.Name, Name: name, AttachedRoutes: n})
		}
	}
	sort.Slice(rep.Listeners, func(i, j int) bool {
		a, b := rep.Listeners[i], rep.Listeners[j]
		if a.Gateway != b.Gateway {
			return a.Gateway < b.Gateway
		}
		return a.Name < b.Name
	})
	for i := range rep.Objects {
		o := &rep.Objects[i]
		reach, configures := res.Reach[resource.Key{Kind: o.Kind, Namespace: o.Namespace, Name: o.Name}]
		switch {
		case !accepted(o):
			o.Conditions = append(o.Conditions, Condition{Type: CondProgrammed, Status: "False", Reason: ReasonInvalid, Message: "not accepted"})
		case configures:
			o.Conditions = append(o.Conditions, programmedOf(reach, rep.Proxies))
		}
	}
	return rep
}

// nodeStatus compares what a node ACKed with what was published (nil:
// nothing yet, so it cannot run it).
func nodeStatus(n server.NodeState, published map[resourcev3.Type]string) Node {
	out := Node{NodeID: n.NodeID, InSync: published != nil}
	for _, typ := range xds.Types {
		st := n.Types[typ]
		if st == nil {
			continue // not subscribed to this type
		}
		t := Type{Type: xds.TypeName(typ), Published: published[typ], Acked: st.Acked, Nacked: st.Nacked, NackError: st.NackError, At: st.At}
		if st.Acked != published[typ] || (st.Nacked != "" && st.Nacked == published[typ]) {
			out.InSync = false
		}
		out.Types = append(out.Types, t)
	}
	return out
}

// programmedOf is an object's Programmed condition, from the proxies it
// reaches. Each Gateway it reaches must have a connected node, and some
// proxy it reaches must: otherwise it is not programmed, and the message
// names what is missing. Then a rejection wins over a configuration that
// could not be published, which wins over nodes that have not applied it
// yet.
func programmedOf(reach translate.Reach, all []Proxy) Condition {
	var proxies []Proxy
	connected := map[string]bool{}
	for _, ps := range all {
		id, err := workload.ParseProxyID(ps.Proxy)
		if err != nil || !reach.Matches(id) {
			continue
		}
		proxies = append(proxies, ps)
		if id.Role == workload.RoleGateway || id.Role == workload.RoleRouter {
			connected[id.Namespace+"/"+id.Name] = true
		}
	}
	var missing []string
	for _, g := range reach.Gateways {
		if !connected[g] {
			missing = append(missing, "Gateway "+g)
		}
	}
	if len(proxies) == 0 && len(missing) == 0 {
		missing = append(missing, reach.Describe())
	}
	if len(missing) > 0 {
		return Condition{Type: CondProgrammed, Status: "False", Reason: ReasonNoProxyConnected, Message: "no node connected for " + strings.Join(missing, ", ")}
	}
	c := Condition{Type: CondProgrammed, Status: "True", Reason: ReasonProgrammed, Message: "applied by every connected node of " + proxyList(proxies)}
	for _, ps := range proxies {
		switch {
		case ps.Rejected != "":
			c = Condition{Type: CondProgrammed, Status: "False", Reason: ReasonRejectedByProxy, Message: ps.Rejected}
		case ps.Pending != "" && c.Status != "False":
			c = Condition{Type: CondProgrammed, Status: "False", Reason: ReasonInvalid, Message: ps.Pending}
		case ps.InSync < len(ps.Nodes) && c.Status == "True":
			c = Condition{Type: CondProgrammed, Status: "Unknown", Reason: ReasonPending, Message: fmt.Sprintf("%d of %d nodes of %s have applied it", ps.InSync, len(ps.Nodes), ps.Proxy)}
		}
	}
	return c
}

// proxyList names proxies for a message: up to five, then how many more.
func proxyList(proxies []Proxy) string {
	const shown = 5
	names := make([]string, 0, shown)
	for i, ps := range proxies {
		if i == shown {
			names = append(names, fmt.Sprintf("and %d more", len(proxies)-shown))
			break
		}
		names = append(names, ps.Proxy)
	}
	return strings.Join(names, ", ")
}

func accepted(o *Object) bool {
	for _, c := range o.Conditions {
		if c.Type == translate.CondAccepted && c.Status == "False" {
			return false
		}
	}
	return true
}
