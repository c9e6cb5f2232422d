package translate

import (
	"sort"
	"strings"

	"github.com/bulkhead-mesh/bulkhead/control-plane/resource"
)

// Condition is one condition of an object's status, as in Kubernetes.
type Condition struct {
	Type    string `json:"type"`
	Status  string `json:"status"` // "True", "False" or "Unknown"
	Reason  string `json:"reason"`
	Message string `json:"message,omitempty"`
}

// ObjectStatus is the status of one input object.
type ObjectStatus struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Origin    string `json:"origin"`
	// ObservedGeneration is the object's metadata.generation that was
	// translated (0 when its file does not say).
	ObservedGeneration int64       `json:"observedGeneration,omitempty"`
	Conditions         []Condition `json:"conditions"`
}

// Status holds the status of every input object translation looked at.
type Status struct {
	objects map[resource.Key]*ObjectStatus
}

func newStatus() *Status { return &Status{objects: map[resource.Key]*ObjectStatus{}} }

// Set sets (replaces) a condition of the object with key k.
func (s *Status) Set(k resource.Key, origin resource.Origin, c Condition) {
	o := s.objects[k]
	if o == nil {
		o = &ObjectStatus{Kind: k.Kind, Namespace: k.Namespace, Name: k.Name, Origin: origin.String(), ObservedGeneration: origin.Generation}
		s.objects[k] = o
	}
	for i := range o.Conditions {
		if o.Conditions[i].Type == c.Type {
			// A False condition is not overwritten by a True one: one bad
			// part makes the whole object not accepted.
			prev := o.Conditions[i]
			switch {
			case prev.Status == "False" && c.Status == "True":
				return
			case prev.Status == "False" && c.Status == "False":
				// Keep every reason: the first one's Reason, all messages.
				if c.Message != "" && !strings.Contains(prev.Message, c.Message) {
					prev.Message += "; " + c.Message
				}
				o.Conditions[i] = prev
				return
			}
			o.Conditions[i] = c
			return
		}
	}
	o.Conditions = append(o.Conditions, c)
}

// Get returns the status of the object with key k, or nil.
func (s *Status) Get(k resource.Key) *ObjectStatus { return s.objects[k] }

// Objects returns every status, sorted by kind, namespace, name.
func (s *Status) Objects() []*ObjectStatus {
	out := make([]*ObjectStatus, 0, len(s.objects))
	for _, o := range s.objects {
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	return out
}

// Condition types and reasons.
const (
	CondAccepted     = "Accepted"
	CondResolvedRefs = "ResolvedRefs"

	ReasonAccepted             = "Accepted"
	ReasonInvalid              = "Invalid"
	ReasonNoMatchingParent     = "NoMatchingParent"
	ReasonUnsupportedValue     = "UnsupportedValue"
	ReasonResolvedRefs         = "ResolvedRefs"
	ReasonBackendNotFound      = "BackendNotFound"
	ReasonInvalidKind          = "InvalidKind"
	ReasonRefNotPermitted      = "RefNotPermitted"
	ReasonNotAllowedByListener = "NotAllowedByListeners"
)
