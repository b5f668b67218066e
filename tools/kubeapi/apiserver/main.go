// Command kube-apiserver is Kubernetes' API server, built from the Go
// module proxy for foldup's kube tests (k8s.io/kubernetes cannot be go
// installed: it has replace directives; go.mod here pins its staging
// modules instead).
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() { os.Exit(cli.Run(app.NewAPIServerCommand())) }
