package qemu

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeAgent answers as qemu-ga does on one connection: the 0xFF that
// resets its parser is skipped, guest-sync-delimited is answered after a
// 0xFF, guest-exec and guest-exec-status from answers. stale is written
// first, as the unread answers of an earlier client.
func fakeAgent(t *testing.T, stale string, answers map[string][]string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "qga")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		conn.Write([]byte(stale))
		r := bufio.NewReader(conn)
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return
			}
			var req struct {
				Execute   string          `json:"execute"`
				Arguments json.RawMessage `json:"arguments"`
			}
			if err := json.Unmarshal(bytes.TrimLeft(line, "\xff"), &req); err != nil {
				conn.Write([]byte(`{"error": {"class": "GenericError", "desc": "bad json"}}` + "\n"))
				continue
			}
			if req.Execute == "guest-sync-delimited" {
				var a struct{ ID int64 }
				json.Unmarshal(req.Arguments, &a)
				b, _ := json.Marshal(map[string]int64{"return": a.ID})
				conn.Write(append(append([]byte{0xff}, b...), '\n'))
				continue
			}
			q := answers[req.Execute]
			if len(q) == 0 {
				conn.Write([]byte(`{"error": {"class": "CommandNotFound", "desc": "no ` + req.Execute + `"}}` + "\n"))
				continue
			}
			conn.Write([]byte(q[0] + "\n"))
			answers[req.Execute] = q[1:]
		}
	}()
	return path
}

func TestAgentExec(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	// An earlier client's answers, one cut mid-line, wait unread.
	path := fakeAgent(t, `{"return": {"pid": 9}}`+"\n"+`{"return": {"exited": tr`, map[string][]string{
		"guest-exec": {`{"return": {"pid": 42}}`},
		"guest-exec-status": {
			`{"return": {"exited": false}}`,
			`{"return": {"exited": true, "exitcode": 3, "out-data": "aGVsbG8K", "err-data": "b29wcwo="}}`,
		},
	})
	a, err := DialAgent(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	res, err := a.Exec(ctx, AgentCommand{Path: "/bin/sh", Args: []string{"-c", "x"}, Input: []byte("in")})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 3 || string(res.Stdout) != "hello\n" || string(res.Stderr) != "oops\n" {
		t.Errorf("Exec = %d %q %q, want 3 \"hello\\n\" \"oops\\n\"", res.ExitCode, res.Stdout, res.Stderr)
	}
}

func TestAgentExecSignal(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	path := fakeAgent(t, "", map[string][]string{
		"guest-exec":        {`{"return": {"pid": 7}}`},
		"guest-exec-status": {`{"return": {"exited": true, "signal": 9}}`},
	})
	a, err := DialAgent(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	res, err := a.Exec(ctx, AgentCommand{Path: "/bin/true"})
	if err != nil || res.ExitCode != 137 {
		t.Errorf("Exec = %d, %v; want 137 (128 + SIGKILL)", res.ExitCode, err)
	}
	// An error the agent answers is the command's error, with its words.
	if err := a.Execute(ctx, "guest-shutdown", nil, nil); err == nil || !strings.Contains(err.Error(), "no guest-shutdown") {
		t.Errorf("Execute(guest-shutdown) = %v, want the agent's error", err)
	}
}

// A channel with no agent behind it never answers: DialAgent ends with
// its context.
func TestDialAgentSilent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qga")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		if c, err := l.Accept(); err == nil {
			defer c.Close()
			time.Sleep(2 * time.Second)
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if _, err := DialAgent(ctx, path); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("DialAgent = %v, want the context's deadline", err)
	}
}

// A guest that never ends its answer does not make foldup read forever.
func TestAgentLongLine(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	path := fakeAgent(t, "", map[string][]string{
		"guest-info": {`{"return": "` + strings.Repeat("x", maxAgentLine+1)},
	})
	a, err := DialAgent(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Execute(ctx, "guest-info", nil, nil); err == nil || !strings.Contains(err.Error(), "MiB") {
		t.Errorf("Execute = %v, want an answer too long", err)
	}
}

// A connection dialled under a short deadline serves commands after it:
// exec dials with a few seconds and then runs for as long as it takes.
func TestAgentOutlivesDialDeadline(t *testing.T) {
	path := fakeAgent(t, "", map[string][]string{
		"guest-exec":        {`{"return": {"pid": 3}}`},
		"guest-exec-status": {`{"return": {"exited": true, "exitcode": 0}}`},
	})
	dctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	a, err := DialAgent(dctx, path)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	time.Sleep(400 * time.Millisecond) // past the dial's deadline
	if _, err := a.Exec(t.Context(), AgentCommand{Path: "/bin/true"}); err != nil {
		t.Errorf("Exec after the dial's deadline: %v", err)
	}
}
