package server

import (
	"sort"
	"sync"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
)

// TypeState is what one node did with the last pushes of one resource type.
type TypeState struct {
	// Acked is the last version the node accepted.
	Acked string `json:"acked,omitempty"`
	// Nacked is the last version it rejected, and why (empty when the last
	// push was accepted).
	Nacked    string    `json:"nacked,omitempty"`
	NackError string    `json:"nackError,omitempty"`
	At        time.Time `json:"at"`
}

// NodeState is the ACK/NACK state of one connected node.
type NodeState struct {
	NodeID    string                `json:"nodeID"`
	Proxy     string                `json:"proxy"`
	Connected bool                  `json:"connected"`
	Types     map[string]*TypeState `json:"types"`
}

// acks tracks, per stream, the nonce of every push and what the node
// answered to it.
type acks struct {
	mu      sync.Mutex
	streams map[int64]*streamState
	now     func() time.Time
}

type streamState struct {
	nodeID string
	proxy  string
	open   bool
	sent   map[string]sentPush // by nonce
	// order lists the nonces of sent, oldest first, to bound it: a node may
	// never answer a push that a newer one superseded.
	order []string
	types map[string]*TypeState
}

// maxPending bounds the pushes remembered per stream while awaiting their
// ACK or NACK.
const maxPending = 64

type sentPush struct {
	typeURL string
	version string
}

func newAcks() *acks {
	return &acks{streams: map[int64]*streamState{}, now: time.Now}
}

func (a *acks) open(stream int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.streams[stream] = &streamState{open: true, sent: map[string]sentPush{}, types: map[string]*TypeState{}}
}

func (a *acks) closed(stream int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.streams, stream)
}

// request records a request: the first names the node; later ones answer a
// push (response_nonce) with an ACK, or a NACK when error_detail is set.
func (a *acks) request(stream int64, proxy string, req *discoveryv3.DiscoveryRequest) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.streams[stream]
	if s == nil {
		return
	}
	if s.nodeID == "" {
		s.nodeID, s.proxy = req.GetNode().GetId(), proxy
	}
	nonce := req.GetResponseNonce()
	if nonce == "" {
		return
	}
	push, ok := s.sent[nonce]
	if !ok {
		return
	}
	delete(s.sent, nonce)
	ts := s.types[push.typeURL]
	if ts == nil {
		ts = &TypeState{}
		s.types[push.typeURL] = ts
	}
	ts.At = a.now()
	if d := req.GetErrorDetail(); d != nil {
		ts.Nacked, ts.NackError = push.version, d.GetMessage()
	} else {
		ts.Acked, ts.Nacked, ts.NackError = push.version, "", ""
	}
}

func (a *acks) response(stream int64, resp *discoveryv3.DiscoveryResponse) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s := a.streams[stream]; s != nil {
		s.sent[resp.GetNonce()] = sentPush{typeURL: resp.GetTypeUrl(), version: resp.GetVersionInfo()}
		s.order = append(s.order, resp.GetNonce())
		for len(s.order) > maxPending {
			delete(s.sent, s.order[0])
			s.order = s.order[1:]
		}
	}
}

// nodes returns the state of every connected node, sorted by node id.
func (a *acks) nodes() []NodeState {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]NodeState, 0, len(a.streams))
	for _, s := range a.streams {
		if s.nodeID == "" {
			continue
		}
		ns := NodeState{NodeID: s.nodeID, Proxy: s.proxy, Connected: s.open, Types: map[string]*TypeState{}}
		for t, ts := range s.types {
			c := *ts
			ns.Types[t] = &c
		}
		out = append(out, ns)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID < out[j].NodeID })
	return out
}

// deltaRequest is request for the incremental protocol.
func (a *acks) deltaRequest(stream int64, proxy string, req *discoveryv3.DeltaDiscoveryRequest) {
	a.request(stream, proxy, &discoveryv3.DiscoveryRequest{
		Node:          req.GetNode(),
		TypeUrl:       req.GetTypeUrl(),
		ResponseNonce: req.GetResponseNonce(),
		ErrorDetail:   req.GetErrorDetail(),
	})
}

// deltaResponse is response for the incremental protocol.
func (a *acks) deltaResponse(stream int64, resp *discoveryv3.DeltaDiscoveryResponse) {
	a.response(stream, &discoveryv3.DiscoveryResponse{
		TypeUrl:     resp.GetTypeUrl(),
		Nonce:       resp.GetNonce(),
		VersionInfo: resp.GetSystemVersionInfo(),
	})
}
