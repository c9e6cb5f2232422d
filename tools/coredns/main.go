// Command coredns is CoreDNS with only the plugins the local cluster's DNS
// needs (the `kubernetes` plugin answers cluster.local; nothing is forwarded,
// so no name ever resolves to an address outside the machine). The default
// CoreDNS build links every plugin, cloud providers included.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	// The plugins, each registering itself with CoreDNS as it is linked.
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

// directives is the order the plugins run in (CoreDNS's own order, cut
// down to those linked above).
var directives = []string{"reload", "health", "ready", "errors", "log", "loadbalance", "cache", "kubernetes"}

func main() {
	dnsserver.Directives = directives
	coremain.Run()
}
