//go:build !linux

package main

import "github.com/spf13/cobra"

// runtimeCommands: up, down and the rest need Linux (bridges, nftables,
// network namespaces); elsewhere foldup validates and plans, against a
// host where nothing runs.
func runtimeCommands(*cobra.Command, *globalFlags) ([]*cobra.Command, observer) { return nil, nil }
