//go:build !linux

package main

import "github.com/spf13/cobra"

// runtimeCommands: up, down and the rest need Linux (bridges, nftables,
// network namespaces); elsewhere foldup validates and plans only.
func runtimeCommands(*cobra.Command, *globalFlags) []*cobra.Command { return nil }
