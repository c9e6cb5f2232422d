package api

import (
	"net/http"

	"github.com/bulkhead-mesh/bulkhead/services/apierr"
	webhooksv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/webhooks/v1"
)

// Webhook endpoints of the caller's own account, in the shape of OpenAI's
// webhook_endpoints (served at /v1/webhooks too), and the deliveries given
// up on.

type wireEndpoint struct {
	ID                string   `json:"id"`
	Object            string   `json:"object"`
	URL               string   `json:"url"`
	EventTypes        []string `json:"event_types"`
	Name              string   `json:"name"`
	CreatedAt         int64    `json:"created_at"`
	UpdatedAt         int64    `json:"updated_at"`
	SigningSecretHint string   `json:"signing_secret_hint"`
	// Only in the answer to its creation.
	SigningSecret string `json:"signing_secret,omitempty"`
}

func toWireEndpoint(e *webhooksv1.Endpoint, secret string) wireEndpoint {
	return wireEndpoint{ID: e.GetId(), Object: "webhook_endpoint", URL: e.GetUrl(), EventTypes: e.GetEventTypes(), Name: e.GetDescription(),
		CreatedAt: e.GetCreatedAt().GetSeconds(), UpdatedAt: e.GetCreatedAt().GetSeconds(), SigningSecretHint: e.GetSecretHint(), SigningSecret: secret}
}

func (s *server) createWebhook(w http.ResponseWriter, r *http.Request, c caller) {
	var body struct {
		URL        string   `json:"url"`
		EventTypes []string `json:"event_types"`
		Name       string   `json:"name"`
	}
	if aerr := decode(w, r, s.o.MaxBodyBytes, &body); aerr != nil {
		aerr.Write(w)
		return
	}
	resp, err := s.webhooks.CreateEndpoint(r.Context(), &webhooksv1.CreateEndpointRequest{AccountId: c.id.AccountId, Url: body.URL, EventTypes: body.EventTypes, Description: body.Name})
	if err != nil {
		apierr.FromGRPC(err).Write(w)
		return
	}
	writeJSON(w, http.StatusOK, toWireEndpoint(resp.GetEndpoint(), resp.GetSecret()))
}

func (s *server) listWebhooks(w http.ResponseWriter, r *http.Request, c caller) {
	resp, err := s.webhooks.ListEndpoints(r.Context(), &webhooksv1.ListEndpointsRequest{AccountId: c.id.AccountId})
	if err != nil {
		apierr.FromGRPC(err).Write(w)
		return
	}
	data := make([]wireEndpoint, 0, len(resp.GetEndpoints()))
	for _, e := range resp.GetEndpoints() {
		data = append(data, toWireEndpoint(e, ""))
	}
	out := map[string]any{"object": "list", "data": data, "has_more": false}
	if len(data) > 0 {
		out["first_id"], out["last_id"] = data[0].ID, data[len(data)-1].ID
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) deleteWebhook(w http.ResponseWriter, r *http.Request, c caller) {
	id := r.PathValue("id")
	if _, err := s.webhooks.DeleteEndpoint(r.Context(), &webhooksv1.DeleteEndpointRequest{AccountId: c.id.AccountId, EndpointId: id}); err != nil {
		apierr.FromGRPC(err).Write(w)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "webhook_endpoint.deleted", "deleted": true})
}

func (s *server) listDeadLetters(w http.ResponseWriter, r *http.Request, c caller) {
	after, limit, aerr := pageOf(r)
	if aerr != nil {
		aerr.Write(w)
		return
	}
	resp, err := s.webhooks.ListDeadLetters(r.Context(), &webhooksv1.ListDeadLettersRequest{AccountId: c.id.AccountId, After: after, Limit: limit})
	if err != nil {
		apierr.FromGRPC(err).Write(w)
		return
	}
	type wireDeadLetter struct {
		ID             string `json:"id"`
		Object         string `json:"object"`
		Endpoint       string `json:"endpoint_id"`
		EventID        string `json:"event_id"`
		EventType      string `json:"event_type"`
		Attempts       int32  `json:"attempts"`
		LastStatus     int32  `json:"last_status"`
		LastError      string `json:"last_error"`
		FirstAttemptAt int64  `json:"first_attempt_at"`
		DeadAt         int64  `json:"dead_at"`
		Payload        string `json:"payload"`
	}
	data := make([]wireDeadLetter, 0, len(resp.GetDeadLetters()))
	for _, d := range resp.GetDeadLetters() {
		data = append(data, wireDeadLetter{ID: d.GetId(), Object: "webhook_dead_letter", Endpoint: d.GetEndpointId(), EventID: d.GetEventId(), EventType: d.GetEventType(),
			Attempts: d.GetAttempts(), LastStatus: d.GetLastStatus(), LastError: d.GetLastError(), FirstAttemptAt: d.GetFirstAttemptAt().GetSeconds(),
			DeadAt: d.GetDeadAt().GetSeconds(), Payload: d.GetPayload()})
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data, "has_more": resp.GetHasMore()})
}
