package main

import "github.com/kubemail/kubemail/controllers/manager"

// runManager is `kubemail manager`: the Kubernetes operator. Its flags and wiring live in
// controllers/manager so that the operator's code stays together.
func runManager(args []string) int {
	return manager.Main(args)
}
