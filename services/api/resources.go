package api

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bulkhead-mesh/bulkhead/services/apierr"
	authv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/auth/v1"
	modelsv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/models/v1"
	usersv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/users/v1"
)

type wireModel struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

func toWireModel(m *modelsv1.Model) wireModel {
	return wireModel{ID: m.GetName(), Object: "model", Created: m.GetCreatedAt().GetSeconds(), OwnedBy: m.GetOwnedBy()}
}

func (s *server) listModels(w http.ResponseWriter, r *http.Request, c caller) {
	resp, err := s.models.ListModels(r.Context(), &modelsv1.ListModelsRequest{AccountId: c.id.AccountId})
	if err != nil {
		apierr.FromGRPC(err).Write(w)
		return
	}
	data := make([]wireModel, 0, len(resp.GetModels()))
	for _, m := range resp.GetModels() {
		data = append(data, toWireModel(m))
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

func (s *server) getModel(w http.ResponseWriter, r *http.Request, c caller) {
	resp, err := s.models.GetModel(r.Context(), &modelsv1.GetModelRequest{Name: r.PathValue("id"), AccountId: c.id.AccountId})
	if err != nil {
		apierr.FromGRPC(err).Write(w)
		return
	}
	writeJSON(w, http.StatusOK, toWireModel(resp.GetModel()))
}

// Keys: the caller manages the keys of its own account; an admin key may
// name another account (account_id) and create admin keys.

type wireKey struct {
	ID         string `json:"id"`
	Object     string `json:"object"`
	Name       string `json:"name"`
	Prefix     string `json:"prefix"`
	AccountID  string `json:"account_id"`
	Role       string `json:"role"`
	CreatedAt  int64  `json:"created_at"`
	ExpiresAt  *int64 `json:"expires_at"`
	RevokedAt  *int64 `json:"revoked_at"`
	LastUsedAt *int64 `json:"last_used_at"`
	Secret     string `json:"secret,omitempty"`
}

func unix(t *timestamppb.Timestamp) *int64 {
	if t == nil {
		return nil
	}
	v := t.GetSeconds()
	return &v
}

func toWireKey(k *authv1.ApiKey) wireKey {
	role := "user"
	if k.GetRole() == authv1.Role_ROLE_ADMIN {
		role = "admin"
	}
	return wireKey{ID: k.GetId(), Object: "api_key", Name: k.GetName(), Prefix: k.GetPrefix(), AccountID: k.GetAccountId(), Role: role,
		CreatedAt: k.GetCreatedAt().GetSeconds(), ExpiresAt: unix(k.GetExpiresAt()), RevokedAt: unix(k.GetRevokedAt()), LastUsedAt: unix(k.GetLastUsedAt())}
}

func isAdmin(c caller) bool { return c.id.GetRole() == authv1.Role_ROLE_ADMIN }

// account is the account a request acts on: the caller's, or the one an
// admin names.
func account(c caller, requested string) (string, *apierr.Error) {
	if requested == "" || requested == c.id.AccountId {
		return c.id.AccountId, nil
	}
	if !isAdmin(c) {
		return "", apierr.Forbidden("Only an admin key may act on another account")
	}
	return requested, nil
}

func (s *server) createKey(w http.ResponseWriter, r *http.Request, c caller) {
	var body struct {
		Name      string `json:"name"`
		AccountID string `json:"account_id"`
		Role      string `json:"role"`
		ExpiresAt *int64 `json:"expires_at"`
	}
	if aerr := decode(w, r, s.o.MaxBodyBytes, &body); aerr != nil {
		aerr.Write(w)
		return
	}
	acct, aerr := account(c, body.AccountID)
	if aerr != nil {
		aerr.Write(w)
		return
	}
	req := &authv1.CreateKeyRequest{AccountId: acct, Name: body.Name, Role: authv1.Role_ROLE_USER}
	switch body.Role {
	case "", "user":
	case "admin":
		if !isAdmin(c) {
			apierr.Forbidden("Only an admin key may create admin keys").Write(w)
			return
		}
		req.Role = authv1.Role_ROLE_ADMIN
	default:
		apierr.InvalidParam("role", `role: must be "user" or "admin"`).Write(w)
		return
	}
	if body.ExpiresAt != nil {
		req.ExpiresAt = timestamppb.New(time.Unix(*body.ExpiresAt, 0))
	}
	resp, err := s.auth.CreateKey(r.Context(), req)
	if err != nil {
		apierr.FromGRPC(err).Write(w)
		return
	}
	k := toWireKey(resp.GetKey())
	k.Secret = resp.GetSecret()
	writeJSON(w, http.StatusCreated, k)
}

func (s *server) listKeys(w http.ResponseWriter, r *http.Request, c caller) {
	acct, aerr := account(c, r.URL.Query().Get("account_id"))
	if aerr != nil {
		aerr.Write(w)
		return
	}
	resp, err := s.auth.ListKeys(r.Context(), &authv1.ListKeysRequest{AccountId: acct, IncludeRevoked: r.URL.Query().Get("include_revoked") == "true",
		PageSize: 100, PageToken: r.URL.Query().Get("after")})
	if err != nil {
		apierr.FromGRPC(err).Write(w)
		return
	}
	data := make([]wireKey, 0, len(resp.GetKeys()))
	for _, k := range resp.GetKeys() {
		data = append(data, toWireKey(k))
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data, "has_more": resp.GetNextPageToken() != ""})
}

func (s *server) revokeKey(w http.ResponseWriter, r *http.Request, c caller) {
	id := r.PathValue("id")
	if !isAdmin(c) && !s.ownsKey(r, c, id) {
		// Not telling a non-owner whether the key exists.
		apierr.NotFound("No such key: " + id).Write(w)
		return
	}
	resp, err := s.auth.RevokeKey(r.Context(), &authv1.RevokeKeyRequest{KeyId: id})
	if err != nil {
		apierr.FromGRPC(err).Write(w)
		return
	}
	writeJSON(w, http.StatusOK, toWireKey(resp.GetKey()))
}

func (s *server) ownsKey(r *http.Request, c caller, id string) bool {
	token := ""
	for {
		resp, err := s.auth.ListKeys(r.Context(), &authv1.ListKeysRequest{AccountId: c.id.AccountId, IncludeRevoked: true, PageSize: 100, PageToken: token})
		if err != nil {
			return false
		}
		for _, k := range resp.GetKeys() {
			if k.GetId() == id {
				return true
			}
		}
		if token = resp.GetNextPageToken(); token == "" {
			return false
		}
	}
}

// usage: GET /v1/usage?start_time=UNIX&end_time=UNIX[&account_id=] (admin).
func (s *server) usage(w http.ResponseWriter, r *http.Request, c caller) {
	q := r.URL.Query()
	acct, aerr := account(c, q.Get("account_id"))
	if aerr != nil {
		aerr.Write(w)
		return
	}
	req := &usersv1.GetUsageRequest{AccountId: acct}
	for _, p := range []struct {
		name string
		dst  **timestamppb.Timestamp
	}{{"start_time", &req.StartTime}, {"end_time", &req.EndTime}} {
		if v := q.Get(p.name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				apierr.InvalidParam(p.name, p.name+": must be a Unix time in seconds").Write(w)
				return
			}
			*p.dst = timestamppb.New(time.Unix(n, 0))
		}
	}
	resp, err := s.users.GetUsage(r.Context(), req)
	if err != nil {
		apierr.FromGRPC(err).Write(w)
		return
	}
	type usage struct {
		Model                 string `json:"model,omitempty"`
		Requests              int64  `json:"requests"`
		PromptTokens          int64  `json:"prompt_tokens"`
		CompletionTokens      int64  `json:"completion_tokens"`
		TotalTokens           int64  `json:"total_tokens"`
		PromptCacheHitTokens  int64  `json:"prompt_cache_hit_tokens"`
		PromptCacheMissTokens int64  `json:"prompt_cache_miss_tokens"`
		CostMicros            int64  `json:"cost_micros"`
	}
	conv := func(model string, u *usersv1.Usage) usage {
		return usage{model, u.GetRequests(), u.GetPromptTokens(), u.GetCompletionTokens(), u.GetTotalTokens(), u.GetPromptCacheHitTokens(), u.GetPromptCacheMissTokens(), u.GetCostMicros()}
	}
	byModel := make([]usage, 0, len(resp.GetByModel()))
	for _, m := range resp.GetByModel() {
		byModel = append(byModel, conv(m.GetModel(), m.GetUsage()))
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "usage", "account_id": acct, "total": conv("", resp.GetTotal()), "by_model": byModel})
}

// balance answers GET /user/balance in DeepSeek's shape. The platform
// keeps one balance per account, in USD, all of it topped up (nothing is
// granted); amounts are strings with two decimals, rounded down, as
// DeepSeek writes them.
func (s *server) balance(w http.ResponseWriter, r *http.Request, c caller) {
	resp, err := s.users.GetAccount(r.Context(), &usersv1.GetAccountRequest{AccountId: c.id.AccountId})
	if err != nil {
		apierr.FromGRPC(err).Write(w)
		return
	}
	a := resp.GetAccount()
	total := cents(a.GetBalanceMicros())
	writeJSON(w, http.StatusOK, map[string]any{
		"is_available": a.GetBalanceMicros() > 0 && !a.GetDisabled(),
		"balance_infos": []map[string]string{{
			"currency": "USD", "total_balance": total, "granted_balance": "0.00", "topped_up_balance": total,
		}},
	})
}

// cents writes micro-units as a decimal string with two places, rounded
// towards zero.
func cents(micros int64) string {
	sign := ""
	if micros < 0 {
		sign, micros = "-", -micros
	}
	c := micros / 10_000
	return fmt.Sprintf("%s%d.%02d", sign, c/100, c%100)
}
