// Command foldup runs virtual machines and containers side by side on one
// private network, from one foldup.yaml.
package main

import "os"

func main() {
	os.Exit(run(interruptible(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
