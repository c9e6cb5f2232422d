// Package policies holds, one folder per feature, the code that applies a
// part of a policy to the IR: its semantic validation (what the CRD's
// OpenAPI and CEL rules cannot check) and its effect. The API types are in
// control-plane/api/v1alpha1 (one package, as CRD generation requires); the
// order in which features apply is the explicit list in translate.
//
// Every Apply returns errors whose text starts with the field path relative
// to the feature ("backoff.maxInterval: …"); the caller prefixes the
// policy's own path.
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
