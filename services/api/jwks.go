package api

import (
	"net/http"

	"github.com/bulkhead-mesh/bulkhead/services/apierr"
	authv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/auth/v1"
)

// JWKSPath is where the public keys of auth's identity tokens are
// published, for the gateways' jwt_authn (SecurityPolicy jwt) and any
// other verifier. Public keys only; no caller authentication.
const JWKSPath = "/.well-known/jwks.json"

// jwks serves auth's key set as auth returns it (auth holds the signing
// key; this adapter only publishes). Verifiers cache it (Cache-Control).
func (s *server) jwks(w http.ResponseWriter, r *http.Request) {
	resp, err := s.auth.GetSigningKeys(r.Context(), &authv1.GetSigningKeysRequest{})
	if err != nil {
		apierr.FromGRPC(err).Write(w)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Write([]byte(resp.GetJwksJson()))
}
