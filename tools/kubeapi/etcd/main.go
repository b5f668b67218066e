// Command etcd is etcd's server, built from the Go module proxy for
// foldup's kube tests (etcd's own module cannot be go installed: it has
// replace directives).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
