// Package peers shares what the proxies connected to each control-plane
// replica have ACKed, so that the one replica that writes status (the
// leader) judges every proxy, not only its own. Several replicas all serve
// xDS and a proxy connects to any one of them; each replica keeps the
// state of its connected nodes in a ConfigMap of its own (in the Lease's
// namespace, labelled app.kubernetes.io/component=control-plane-nodes),
// rewritten when it changes and at least every Heartbeat; the leader reads
// the others' and ignores any not rewritten within Stale (a replica that
// died: its proxies reconnect to a live one).
package peers

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/bulkhead-mesh/bulkhead/control-plane/server"
)

const (
	labelComponent = "app.kubernetes.io/component"
	component      = "control-plane-nodes"
	dataKey        = "nodes.json"
	// maxData keeps a ConfigMap under the API's 1 MiB limit.
	maxData = 900 * 1024
)

// Peers publishes this replica's node states and reads the others'.
type Peers struct {
	Client    kubernetes.Interface
	Namespace string
	// Name prefixes the ConfigMaps; Identity (this replica's, as in the
	// Lease) ends its own.
	Name, Identity string
	// Heartbeat (default 10s) and Stale (default 30s).
	Heartbeat, Stale time.Duration

	last      string
	written   time.Time
	published bool
}

// record is a ConfigMap's content; Nodes is a []server.NodeState.
type record struct {
	Identity  string          `json:"identity"`
	UpdatedAt time.Time       `json:"updatedAt"`
	Nodes     json.RawMessage `json:"nodes"`
}

func (p *Peers) heartbeat() time.Duration {
	if p.Heartbeat == 0 {
		return 10 * time.Second
	}
	return p.Heartbeat
}

func (p *Peers) stale() time.Duration {
	if p.Stale == 0 {
		return 30 * time.Second
	}
	return p.Stale
}

// configMapName is a valid object name for this replica's ConfigMap.
func (p *Peers) configMapName() string {
	id := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '.':
			return r
		case r >= 'A' && r <= 'Z':
			return r + ('a' - 'A')
		}
		return '-'
	}, p.Identity)
	name := strings.Trim(p.Name+"-nodes-"+id, "-.")
	if len(name) > 253 {
		name = name[:253]
	}
	return name
}

// Publish writes this replica's connected nodes, if they changed or the
// heartbeat is due. Not safe for concurrent use.
func (p *Peers) Publish(ctx context.Context, nodes []server.NodeState, now time.Time) error {
	nodes = connected(nodes)
	body, err := json.Marshal(nodes)
	if err != nil {
		return fmt.Errorf("peers: %w", err)
	}
	if p.published && string(body) == p.last && now.Sub(p.written) < p.heartbeat() {
		return nil
	}
	data, err := json.Marshal(record{Identity: p.Identity, UpdatedAt: now.UTC(), Nodes: body})
	if err != nil {
		return fmt.Errorf("peers: %w", err)
	}
	if len(data) > maxData {
		return fmt.Errorf("peers: the state of %d nodes is %d bytes, more than a ConfigMap holds (%d): the leader cannot see them", len(nodes), len(data), maxData)
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.configMapName(), Labels: map[string]string{labelComponent: component}},
		Data:       map[string]string{dataKey: string(data)},
	}
	cms := p.Client.CoreV1().ConfigMaps(p.Namespace)
	_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		_, err = cms.Create(ctx, cm, metav1.CreateOptions{})
	}
	if err != nil {
		return fmt.Errorf("peers: publish %s/%s: %w", p.Namespace, cm.Name, err)
	}
	p.last, p.written, p.published = string(body), now, true
	return nil
}

// Others are the connected nodes of every other live replica.
func (p *Peers) Others(ctx context.Context, now time.Time) ([]server.NodeState, error) {
	list, err := p.Client.CoreV1().ConfigMaps(p.Namespace).List(ctx, metav1.ListOptions{LabelSelector: labelComponent + "=" + component})
	if err != nil {
		return nil, fmt.Errorf("peers: list %s: %w", p.Namespace, err)
	}
	var out []server.NodeState
	for _, cm := range list.Items {
		if cm.Name == p.configMapName() {
			continue
		}
		var r record
		var nodes []server.NodeState
		if err := json.Unmarshal([]byte(cm.Data[dataKey]), &r); err != nil || json.Unmarshal(r.Nodes, &nodes) != nil {
			continue // not ours to judge; the replica rewrites it
		}
		if now.Sub(r.UpdatedAt) > p.stale() {
			continue
		}
		out = append(out, connected(nodes)...)
	}
	return out, nil
}

// Withdraw deletes this replica's ConfigMap (on a clean stop).
func (p *Peers) Withdraw(ctx context.Context) error {
	err := p.Client.CoreV1().ConfigMaps(p.Namespace).Delete(ctx, p.configMapName(), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("peers: %w", err)
	}
	return nil
}

func connected(nodes []server.NodeState) []server.NodeState {
	out := make([]server.NodeState, 0, len(nodes))
	for _, n := range nodes {
		if n.Connected {
			out = append(out, n)
		}
	}
	return out
}
