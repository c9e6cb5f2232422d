package translate

import (
	"net/netip"

	discoveryv1 "k8s.io/api/discovery/v1"
)

func validIP(s string, t discoveryv1.AddressType) bool {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return false
	}
	if t == discoveryv1.AddressTypeIPv4 {
		return a.Is4()
	}
	return a.Is6() && !a.Is4In6()
}
