package server

import (
	"context"
	"sync"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// Node proof: with the xDS connection in mTLS (production mode), a node
// proves who it is with its workload certificate, and the identity it
// claims in its metadata (workload.Identity of its ProxyID) must be the one
// its certificate carries. Only a proven node of an Envoy role is ever
// given secrets (SDS).

// peerIdentity is the SPIFFE ID of the stream's TLS client certificate
// ("" on a plaintext connection).
func peerIdentity(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.PeerCertificates) == 0 {
		return ""
	}
	for _, u := range ti.State.PeerCertificates[0].URIs {
		if u.Scheme == "spiffe" {
			return u.String()
		}
	}
	return ""
}

// proofs remembers the proven identity of each stream.
type proofs struct {
	mu       sync.Mutex
	byStream map[int64]string
}

func (p *proofs) open(ctx context.Context, stream int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.byStream == nil {
		p.byStream = map[int64]string{}
	}
	p.byStream[stream] = peerIdentity(ctx)
}

func (p *proofs) closed(stream int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.byStream, stream)
}

func (p *proofs) of(stream int64) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.byStream[stream]
}
