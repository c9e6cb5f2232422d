// Package admin serves the control plane's admin endpoint (JSON over HTTP):
//
//	GET /healthz                 200 once the first translation is published
//	GET /status                  every object's Accepted and Programmed conditions
//	GET /nodes                   every connected node's ACK/NACK state per type
//	GET /config_dump?proxy=ROLE/NS/NAME[&format=yaml]   the xDS published to a proxy
package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/server"
	"github.com/bulkhead-mesh/bulkhead/control-plane/translate"
	"github.com/bulkhead-mesh/bulkhead/control-plane/xds"
)

// Source is what the admin endpoint reads.
type Source interface {
	// Latest is the latest translation (nil before the first).
	Latest() *translate.Result
	XDS() *server.Server
}

// Handler returns the admin HTTP handler.
func Handler(src Source) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if src.Latest() == nil {
			http.Error(w, "no configuration translated yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		res := src.Latest()
		if res == nil {
			http.Error(w, "no configuration translated yet", http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, Report(res, src.XDS()))
	})
	mux.HandleFunc("GET /nodes", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, src.XDS().Nodes())
	})
	mux.HandleFunc("GET /config_dump", func(w http.ResponseWriter, r *http.Request) {
		id, err := ir.ParseProxyID(r.URL.Query().Get("proxy"))
		if err != nil {
			http.Error(w, "proxy: "+err.Error(), http.StatusBadRequest)
			return
		}
		res, pubErr := src.XDS().Published(id)
		if res == nil {
			http.Error(w, fmt.Sprintf("nothing published to %s: no node of it has connected", id), http.StatusNotFound)
			return
		}
		var body []byte
		if r.URL.Query().Get("format") == "yaml" {
			body, err = res.YAML()
			w.Header().Set("Content-Type", "application/yaml")
		} else {
			body, err = res.JSON()
			w.Header().Set("Content-Type", "application/json")
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if pubErr != nil {
			w.Header().Set("X-Bulkhead-Rejected", pubErr.Error())
		}
		w.Write(body)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// StatusReport is what /status serves and `bulkhead status` prints.
type StatusReport struct {
	Objects []*translate.ObjectStatus `json:"objects"`
	// Problems lists the translation errors (file, object, field).
	Problems []string `json:"problems,omitempty"`
	// Proxies is the sync state of each proxy identity.
	Proxies []ProxySync `json:"proxies"`
}

// ProxySync says whether the nodes of one proxy identity run what was
// published to it.
type ProxySync struct {
	Proxy    string `json:"proxy"`
	Nodes    int    `json:"nodes"`
	InSync   int    `json:"inSync"`
	Rejected string `json:"rejected,omitempty"`
	// Pending is why the latest translation is not published (the proxy
	// keeps its last good configuration).
	Pending string `json:"pending,omitempty"`
}

// Report computes every object's Programmed condition: True when every
// connected node has ACKed the versions published after the translation
// that carries it, False when a node rejected them (the NACK's text is the
// message) or the configuration could not be published, Unknown while
// nodes have not answered yet or none is connected.
func Report(res *translate.Result, srv *server.Server) StatusReport {
	rep := StatusReport{}
	// Copies: the translation's statuses are shared and must not grow.
	for _, o := range res.Status.Objects() {
		c := *o
		c.Conditions = slices.Clone(o.Conditions)
		rep.Objects = append(rep.Objects, &c)
	}
	for _, e := range res.Errors {
		rep.Problems = append(rep.Problems, e.Error())
	}
	byProxy := map[string]*ProxySync{}
	versions := map[string]map[resourcev3.Type]string{}
	for _, n := range srv.Nodes() {
		ps := byProxy[n.Proxy]
		if ps == nil {
			// Once per proxy identity: what was published to it.
			ps = &ProxySync{Proxy: n.Proxy}
			byProxy[n.Proxy] = ps
			if id, err := ir.ParseProxyID(n.Proxy); err == nil {
				if _, pubErr := srv.Published(id); pubErr != nil {
					ps.Pending = pubErr.Error()
				}
				for _, w := range srv.Warnings(id) {
					if !slices.Contains(rep.Problems, w.Error()) {
						rep.Problems = append(rep.Problems, w.Error())
					}
				}
				versions[n.Proxy] = srv.PublishedVersions(id)
			}
		}
		ps.Nodes++
		published := versions[n.Proxy]
		// Nothing published yet: the node cannot run it.
		inSync := published != nil
		for _, typ := range xds.Types {
			st := n.Types[typ]
			if st == nil {
				continue // not subscribed to this type
			}
			if st.Nacked != "" && st.Nacked == published[typ] {
				ps.Rejected = fmt.Sprintf("node %s rejected %s version %s: %s", n.NodeID, xds.TypeName(typ), st.Nacked, st.NackError)
				inSync = false
			} else if st.Acked != published[typ] {
				inSync = false
			}
		}
		if inSync {
			ps.InSync++
		}
	}
	programmed := translate.Condition{Type: "Programmed", Status: "True", Reason: "Programmed", Message: "every connected node runs it"}
	switch {
	case len(byProxy) == 0:
		programmed = translate.Condition{Type: "Programmed", Status: "Unknown", Reason: "NoProxyConnected", Message: "no proxy is connected"}
	default:
		for _, ps := range sortedProxies(byProxy) {
			rep.Proxies = append(rep.Proxies, *ps)
			switch {
			case ps.Rejected != "":
				programmed = translate.Condition{Type: "Programmed", Status: "False", Reason: "RejectedByProxy", Message: ps.Rejected}
			case ps.Pending != "" && programmed.Status != "False":
				programmed = translate.Condition{Type: "Programmed", Status: "False", Reason: "Invalid", Message: ps.Pending}
			case ps.InSync < ps.Nodes && programmed.Status == "True":
				programmed = translate.Condition{Type: "Programmed", Status: "Unknown", Reason: "Pending", Message: fmt.Sprintf("%d of %d nodes of %s have applied it", ps.InSync, ps.Nodes, ps.Proxy)}
			}
		}
	}
	for _, o := range rep.Objects {
		accepted := true
		for _, c := range o.Conditions {
			if c.Type == translate.CondAccepted && c.Status == "False" {
				accepted = false
			}
		}
		c := programmed
		if !accepted {
			c = translate.Condition{Type: "Programmed", Status: "False", Reason: "Invalid", Message: "not accepted"}
		}
		o.Conditions = append(o.Conditions, c)
	}
	return rep
}

func sortedProxies(m map[string]*ProxySync) []*ProxySync {
	out := make([]*ProxySync, 0, len(m))
	for _, p := range m {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Proxy < out[j].Proxy })
	return out
}
