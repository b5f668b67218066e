//go:build linux

package supervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/foldup/foldup/state"
)

// Client talks to a project's supervisor.
type Client struct {
	d  state.Dirs
	hc *http.Client
}

func NewClient(d state.Dirs) *Client {
	return &Client{d: d, hc: &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", d.Socket())
		}},
	}}
}

func (c *Client) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://supervisor"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var b strings.Builder
		buf := make([]byte, 4096)
		n, _ := resp.Body.Read(buf)
		b.Write(buf[:n])
		return fmt.Errorf("supervisor: %s", strings.TrimSpace(b.String()))
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

// Status asks the supervisor how it is; an error means none answers.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var st Status
	if err := c.do(ctx, http.MethodGet, "/status", &st); err != nil {
		return nil, err
	}
	return &st, nil
}

func (c *Client) Reload(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/reload", nil)
}

// Stop asks the supervisor to stop and waits for its process to end; one
// that does not answer is killed by its pid file.
func (c *Client) Stop(ctx context.Context) error {
	pid := state.ReadPid(c.d.PidFile())
	err := c.do(ctx, http.MethodPost, "/stop", nil)
	if pid <= 0 || pid == os.Getpid() {
		return nil
	}
	deadline := time.Now().Add(5 * time.Second)
	if err != nil {
		deadline = time.Now() // not answering: do not wait for it
	}
	for time.Now().Before(deadline) {
		if !state.Alive(pid) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	if state.Alive(pid) && IsSupervisor(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		for i := 0; i < 100 && state.Alive(pid); i++ {
			time.Sleep(20 * time.Millisecond)
		}
	}
	os.Remove(c.d.PidFile())
	os.Remove(c.d.Socket())
	return nil
}

// IsSupervisor checks that pid is a foldup supervisor, so that a pid file
// left by a crash never makes foldup kill a process that reused the pid.
func IsSupervisor(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	return strings.Contains(string(b), "\x00supervise\x00")
}
