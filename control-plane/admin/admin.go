// Package admin serves the control plane's admin endpoint (JSON over HTTP):
//
//	GET /healthz                 200 once the first translation is published
//	GET /status                  the status report: every object's conditions (Accepted, Programmed, …) and every proxy's sync state
//	GET /nodes                   every connected node's ACK/NACK record per type
//	GET /config_dump?proxy=ROLE/NS/NAME[&format=yaml]   the xDS published to a proxy
//
// It presents; the status itself is computed by the status stage.
package admin

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/bulkhead-mesh/bulkhead/control-plane/server"
	"github.com/bulkhead-mesh/bulkhead/control-plane/status"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

// Source is what the admin endpoint reads.
type Source interface {
	// Status is the status report (false before the first translation).
	Status() (status.Report, bool)
	XDS() *server.Server
}

// Handler returns the admin HTTP handler.
func Handler(src Source) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := src.Status(); !ok {
			http.Error(w, "no configuration translated yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		rep, ok := src.Status()
		if !ok {
			http.Error(w, "no configuration translated yet", http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, rep)
	})
	mux.HandleFunc("GET /nodes", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, src.XDS().Nodes())
	})
	mux.HandleFunc("GET /config_dump", func(w http.ResponseWriter, r *http.Request) {
		id, err := workload.ParseProxyID(r.URL.Query().Get("proxy"))
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
