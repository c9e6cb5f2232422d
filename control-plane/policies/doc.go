// Package policies is the contract of a policy feature, and its folders
// (one per feature) are the features: each holds its API notes (its package
// documentation), its validation, how it applies to the IR, its unit tests
// and its golden cases through both golden layers. The API types are in
// control-plane/api/v1alpha1 (one package, as CRD generation requires).
//
// A feature is one field of a policy's spec (BackendPolicy.retry,
// SecurityPolicy.extAuth, RateLimitPolicy's rules). It says which policy
// kind it belongs to and which target kinds it may attach to; translate
// resolves the policy's targetRefs into Targets, refuses the targets a
// feature cannot attach to (with the feature's own message), lets the
// feature validate itself (Build) and then apply itself to each target
// (Apply). The order in which features apply, and so their precedence, is
// the one list in control-plane/translate/features.go; adding a feature is
// a new folder here and one line there (control-plane/README.md walks
// through the retry folder as the example).
package policies

// Uint32 converts an optional count of the API (int32, non-negative by its
// CRD rules) to the IR's; nil stays unset.
func Uint32(p *int32) *uint32 {
	if p == nil {
		return nil
	}
	v := uint32(*p)
	return &v
}
