package server

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/internal/pki"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

// secretCache keeps one certificate per identity, renewed at two thirds of
// its life.
type secretCache struct {
	mu     sync.Mutex
	byID   map[string]*issuedAt
	issued int
}

type issuedAt struct {
	*pki.Issued
	renewAt time.Time
}

// secretsFor returns the SDS secrets of a proxy: only in production mode
// (proven nodes), only for Envoy roles, only with an Issuer.
func (s *Server) secretsFor(ctx context.Context, id workload.ProxyID) ([]types.Resource, error) {
	if !s.RequireProof || s.Issuer == nil || !id.Role.Envoy() {
		return nil, nil
	}
	spiffeID := workload.Identity(id, "")
	s.secrets.mu.Lock()
	defer s.secrets.mu.Unlock()
	if s.secrets.byID == nil {
		s.secrets.byID = map[string]*issuedAt{}
	}
	c := s.secrets.byID[spiffeID]
	if c == nil || !time.Now().Before(c.renewAt) {
		iss, err := s.Issuer.Issue(ctx, spiffeID)
		if err != nil {
			if c != nil && time.Now().Before(c.NotAfter) {
				s.log.Error("renewing an Envoy workload certificate failed; the current one is kept", "identity", spiffeID, "error", err)
			} else {
				return nil, fmt.Errorf("workload certificate of %s: %w", spiffeID, err)
			}
		} else {
			now := time.Now()
			c = &issuedAt{Issued: iss, renewAt: now.Add(iss.NotAfter.Sub(now) * 2 / 3)}
			s.secrets.byID[spiffeID] = c
			s.secrets.issued++
		}
	}
	inline := func(v string) *corev3.DataSource {
		return &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: v}}
	}
	return []types.Resource{
		&tlsv3.Secret{Name: ir.TrustBundleSecret, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: inline(c.TrustBundle),
		}}},
		&tlsv3.Secret{Name: ir.WorkloadSecret, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: inline(c.FullChain()),
			PrivateKey:       inline(c.PrivateKey),
		}}},
	}, nil
}

// nextRenewal is when the earliest held certificate is due.
func (s *Server) nextRenewal() (time.Time, bool) {
	s.secrets.mu.Lock()
	defer s.secrets.mu.Unlock()
	var next time.Time
	for _, c := range s.secrets.byID {
		if next.IsZero() || c.renewAt.Before(next) {
			next = c.renewAt
		}
	}
	return next, !next.IsZero()
}

// SecretsIssued counts the certificates issued for Envoy nodes (tests).
func (s *Server) SecretsIssued() int {
	s.secrets.mu.Lock()
	defer s.secrets.mu.Unlock()
	return s.secrets.issued
}

// renewSecrets republishes, when a certificate is due, the proxies whose
// secrets it is (their snapshot then carries the new one).
func (s *Server) renewSecrets(ctx context.Context) {
	for {
		wait := time.Minute
		if next, ok := s.nextRenewal(); ok {
			wait = min(wait, max(time.Until(next), time.Second))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		s.mu.Lock()
		if s.snapshot != nil {
			for _, p := range s.proxies {
				if p.id.Role.Envoy() {
					s.publishLocked(ctx, p)
				}
			}
		}
		s.mu.Unlock()
	}
}
