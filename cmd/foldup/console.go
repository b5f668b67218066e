//go:build linux

package main

import (
	"fmt"
	"os"

	"github.com/foldup/foldup/executor"
	"github.com/foldup/foldup/internal/term"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

func newConsoleCmd(g *globalFlags, rf *runtimeFlags) *cobra.Command {
	return &cobra.Command{
		Use:               "console VM",
		ValidArgsFunction: completeMembers(g),
		Short:             "Attach to a VM's serial console (detach with Ctrl-])",
		Long: `Attach to a VM's serial console: what the guest prints, and what you type
goes to it. Ctrl-] detaches and leaves the VM running. With input that is
not a terminal (a script's), console sends it all, waits for the guest to
go quiet, and exits.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := g.projectName(cmd)
			if err != nil {
				return err
			}
			in := cmd.InOrStdin()
			if f, ok := in.(*os.File); ok && term.Is(f) {
				restore, err := rawTerminal(int(f.Fd()))
				if err != nil {
					return err
				}
				defer restore()
				fmt.Fprintf(cmd.ErrOrStderr(), "Connected to %s's console; detach with Ctrl-]\r\n", args[0])
				defer fmt.Fprintf(cmd.ErrOrStderr(), "\r\nDetached from %s\r\n", args[0])
			}
			return executor.New(rf.quietOptions(cmd.ErrOrStderr())).Console(cmd.Context(), name, args[0], in, cmd.OutOrStdout())
		},
	}
}

// rawTerminal puts the terminal at fd in raw mode (cfmakeraw's settings):
// every key goes to the guest as it is typed, Ctrl-C included. It returns
// how to put it back.
func rawTerminal(fd int) (func(), error) {
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, fmt.Errorf("terminal: %w", err)
	}
	t := *old
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &t); err != nil {
		return nil, fmt.Errorf("terminal: %w", err)
	}
	return func() { unix.IoctlSetTermios(fd, unix.TCSETS, old) }, nil
}
