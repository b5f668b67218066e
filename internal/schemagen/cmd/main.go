// Command schemagen writes foldup's JSON schema to the file named by its
// argument. It is run by `go generate` at the repository root.
package main

import (
	"fmt"
	"os"

	"github.com/foldup/foldup/internal/schemagen"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: schemagen OUTPUT")
		os.Exit(2)
	}
	b, err := schemagen.Generate()
	if err != nil {
		fmt.Fprintln(os.Stderr, "schemagen:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(os.Args[1], b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "schemagen:", err)
		os.Exit(1)
	}
}
