package webhooks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// guard decides which addresses outbound deliveries may reach: public
// unicast addresses, and the networks the operator allows; never
// loopback, link-local (cloud metadata), private, shared (CGNAT),
// unspecified, multicast or reserved ones otherwise (server-side request
// forgery). It is checked when an endpoint is registered (every address
// its host resolves to) and again on every connection (the address
// actually dialled), so a name that resolves elsewhere later gains
// nothing.
type guard struct {
	allowed []netip.Prefix
}

// blocked are the networks refused unless allowed, beyond what netip's
// predicates name.
var blocked = []netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/10"),   // shared address space (CGNAT)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64: would reach IPv4 inside
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("::ffff:0:0/96"),   // IPv4-mapped (checked unmapped)
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
}

func newGuard(allowed []string) (*guard, error) {
	g := &guard{}
	for i, a := range allowed {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		p, err := netip.ParsePrefix(a)
		if err != nil {
			if addr, aerr := netip.ParseAddr(a); aerr == nil {
				p = netip.PrefixFrom(addr, addr.BitLen())
			} else {
				return nil, fmt.Errorf("allowed network %d (%q): not a CIDR or an address", i, a)
			}
		}
		g.allowed = append(g.allowed, p.Masked())
	}
	return g, nil
}

// check says why addr may not be reached (nil: it may).
func (g *guard) check(addr netip.Addr) error {
	addr = addr.Unmap()
	for _, p := range g.allowed {
		if p.Contains(addr) {
			return nil
		}
	}
	var kind string
	switch {
	case addr.IsLoopback():
		kind = "loopback"
	case addr.IsLinkLocalUnicast() || addr.IsLinkLocalMulticast():
		kind = "link-local"
	case addr.IsPrivate():
		kind = "private"
	case addr.IsUnspecified():
		kind = "unspecified"
	case addr.IsMulticast():
		kind = "multicast"
	}
	for _, p := range blocked {
		if kind == "" && p.Contains(addr) {
			kind = "reserved"
		}
	}
	if kind != "" {
		return fmt.Errorf("%s is a %s address, which webhooks do not reach unless the operator allows it (--allow-network)", addr, kind)
	}
	return nil
}

// checkURL checks an endpoint's URL and every address its host resolves to.
func (g *guard) checkURL(ctx context.Context, raw string, resolver *net.Resolver) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("not a URL: %v", err)
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("scheme %q: must be https or http", u.Scheme)
	case u.Hostname() == "":
		return errors.New("has no host")
	case u.User != nil:
		return errors.New("must not carry credentials (user:password@)")
	case len(raw) > 2048:
		return errors.New("is longer than 2048 characters")
	}
	host := u.Hostname()
	if addr, err := netip.ParseAddr(host); err == nil {
		return g.check(addr)
	}
	addrs, err := resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("host %q does not resolve: %v", host, err)
	}
	for _, a := range addrs {
		if err := g.check(a); err != nil {
			return fmt.Errorf("host %q resolves to %v", host, err)
		}
	}
	return nil
}

// control is a net.Dialer Control: the connection is refused before it is
// made when the address dialled is not allowed.
func (g *guard) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("webhook delivery: dialling %q: %v", address, err)
	}
	return g.check(ap.Addr())
}
