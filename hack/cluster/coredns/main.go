// Command coredns is CoreDNS (github.com/coredns/coredns, pinned in go.mod) with only the plugins
// the e2e cluster's Corefile uses, which keeps the build to a fraction of the full server's:
// kubernetes (Service and pod names), file (the test mail domains' zones), template (a local
// NXDOMAIN for every other name: nothing leaves the cluster's bridge), and errors, log, health,
// ready, cache, loop and reload as in Kubernetes' default Corefile.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/file"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
	_ "github.com/coredns/coredns/plugin/template"
)

func main() { coremain.Run() }
