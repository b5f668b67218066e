//go:build linux

package vm

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/foldup/foldup/state"
	"golang.org/x/crypto/ssh"
)

// SSHUser is the user foldup's cloud-init seed adds to a guest, with the
// project's key and passwordless sudo (cloudinit.Config.SSHKey), as
// Vagrant's box user and Lima's are: exec, ssh and cp reach a cloud-init
// guest as it, with nothing in the file.
const SSHUser = "foldup"

// KeyFile is the project's SSH private key (OpenSSH format, 0600), made
// by the first up of a project with a VM that has foldup's seed.
func KeyFile(d state.Dirs) string { return filepath.Join(d.State, "ssh", "id_ed25519") }

// ProjectKey returns the project's SSH key, made on first use, and its
// public half as an authorized_keys line.
func ProjectKey(d state.Dirs) (ssh.Signer, string, error) {
	path := KeyFile(d)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		_, priv, gerr := ed25519.GenerateKey(rand.Reader)
		if gerr != nil {
			return nil, "", gerr
		}
		block, merr := ssh.MarshalPrivateKey(priv, "foldup project "+filepath.Base(d.State))
		if merr != nil {
			return nil, "", merr
		}
		b = pem.EncodeToMemory(block)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, "", err
		}
		if err := state.WriteFileAtomic(path, b); err != nil {
			return nil, "", err
		}
	} else if err != nil {
		return nil, "", err
	}
	signer, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + " foldup-" + filepath.Base(d.State)
	return signer, line, nil
}

// ExecOptions are how a command runs in a VM.
type ExecOptions struct {
	Stdin          io.Reader // nil: none
	Stdout, Stderr io.Writer
	Tty            bool
	// Dial connects to the guest (nil: from this process's network
	// namespace, where the project's bridge is).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Exec runs command (a shell command line) in the VM at addr as SSHUser,
// over SSH with the project's key, and returns its exit status. The
// guest's host key is not checked: the VM is on the project's own bridge,
// reached from this host only, and its host key is new with each
// instance (as Vagrant and Lima do for their VMs).
func Exec(ctx context.Context, d state.Dirs, addr netip.Addr, command string, o ExecOptions) (int, error) {
	signer, _, err := ProjectKey(d)
	if err != nil {
		return -1, err
	}
	dial := o.Dial
	if dial == nil {
		dial = (&net.Dialer{Timeout: 10 * time.Second}).DialContext
	}
	cfg := &ssh.ClientConfig{
		User:            SSHUser,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(),
		Timeout:         10 * time.Second,
	}
	conn, err := dial(ctx, "tcp", netip.AddrPortFrom(addr, 22).String())
	if err != nil {
		return -1, fmt.Errorf("ssh to %s: %w (foldup reaches a VM with its cloud-init seed, as user %s, once the guest's sshd runs)", addr, err, SSHUser)
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, conn.RemoteAddr().String(), cfg)
	if err != nil {
		conn.Close()
		return -1, fmt.Errorf("ssh to %s as %s: %w", addr, SSHUser, err)
	}
	client := ssh.NewClient(c, chans, reqs)
	defer client.Close()
	s, err := client.NewSession()
	if err != nil {
		return -1, err
	}
	defer s.Close()
	if o.Tty {
		if err := s.RequestPty(cmpEnv("TERM", "xterm"), 40, 120, ssh.TerminalModes{}); err != nil {
			return -1, err
		}
	}
	s.Stdin, s.Stdout, s.Stderr = o.Stdin, o.Stdout, o.Stderr
	done := make(chan error, 1)
	go func() { done <- s.Run(command) }()
	select {
	case <-ctx.Done():
		s.Signal(ssh.SIGTERM)
		client.Close()
		return -1, ctx.Err()
	case err = <-done:
	}
	var ee *ssh.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitStatus(), nil
	case err != nil:
		return -1, err
	}
	return 0, nil
}

func cmpEnv(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// ShellQuote joins args into a command line a POSIX shell reads back as
// those args.
func ShellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
		}) < 0 {
			q[i] = a
			continue
		}
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}
