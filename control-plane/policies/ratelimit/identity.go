package ratelimit

import "github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"

// IdentityHeaders are the request headers auth's Check sets (ext_authz)
// that identity selectors read: services/identity defines the same names
// (identity_test.go keeps them equal).
var IdentityHeaders = map[v1alpha1.IdentityField]string{
	v1alpha1.IdentityKeyID:     "x-bulkhead-key-id",
	v1alpha1.IdentityAccountID: "x-bulkhead-account-id",
	v1alpha1.IdentityTier:      "x-bulkhead-tier",
}

// identityKeys are the descriptor keys of the identity selectors.
var identityKeys = map[v1alpha1.IdentityField]string{
	v1alpha1.IdentityKeyID:     "key_id",
	v1alpha1.IdentityAccountID: "account_id",
	v1alpha1.IdentityTier:      "tier",
}
