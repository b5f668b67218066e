package qemu

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"time"
)

// AgentPort is the name of the virtio-serial port qemu-guest-agent opens
// in the guest (its default, /dev/virtio-ports/org.qemu.guest_agent.0).
const AgentPort = "org.qemu.guest_agent.0"

// AgentChardev is the id of the chardev behind the guest agent's port:
// QMP's query-chardev says whether the guest holds the port open.
const AgentChardev = "qga"

// Agent is a connection to a qemu-guest-agent through the socket of its
// virtio-serial channel. Its protocol is QMP's without the greeting: one
// command at a time, each answered in order. Not safe for concurrent use.
type Agent struct {
	conn net.Conn
	r    *bufio.Reader
}

// DialAgent connects to the agent's channel at path and synchronises with
// the agent (guest-sync-delimited), discarding what an earlier client
// left unread. Bytes sent to a guest without an agent wait in the
// channel: DialAgent fails when ctx ends first.
func DialAgent(ctx context.Context, path string) (*Agent, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	a := &Agent{conn: conn, r: bufio.NewReader(conn)}
	if err := a.sync(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return a, nil
}

// sync sends 0xFF, which resets the agent's parser, and then
// guest-sync-delimited, whose answer the agent starts with 0xFF: what
// comes before it is an earlier client's and is dropped.
func (a *Agent) sync(ctx context.Context) error {
	stop := a.deadline(ctx)
	defer stop()
	id := rand.Int64N(1 << 40)
	req, _ := json.Marshal(map[string]any{"execute": "guest-sync-delimited", "arguments": map[string]any{"id": id}})
	if _, err := a.conn.Write(append([]byte{0xff}, append(req, '\n')...)); err != nil {
		return agentErr("guest-sync-delimited", ctx, err)
	}
	for {
		if err := a.skipTo(0xff); err != nil {
			return agentErr("guest-sync-delimited", ctx, err)
		}
		var got struct {
			Return int64 `json:"return"`
		}
		line, err := a.readLine()
		if err != nil {
			return agentErr("guest-sync-delimited", ctx, err)
		}
		if json.Unmarshal(line, &got) == nil && got.Return == id {
			return nil
		}
	}
}

// deadline makes the connection's reads and writes end with ctx.
func (a *Agent) deadline(ctx context.Context) (stop func()) {
	dl, _ := ctx.Deadline() // zero, and so none, when ctx has none
	a.conn.SetDeadline(dl)
	after := context.AfterFunc(ctx, func() { a.conn.SetDeadline(time.Now()) })
	return func() { after() }
}

func agentErr(command string, ctx context.Context, err error) error {
	if dl, ok := ctx.Deadline(); ctx.Err() != nil {
		err = ctx.Err()
	} else if ok && !time.Now().Before(dl) {
		// The connection's deadline is ctx's: it can pass a moment
		// before ctx says so.
		err = context.DeadlineExceeded
	}
	return fmt.Errorf("guest agent: %s: %w", command, err)
}

// Execute runs an agent command with args (nil for none) and decodes its
// return value into out (nil to ignore it).
func (a *Agent) Execute(ctx context.Context, command string, args, out any) error {
	stop := a.deadline(ctx)
	defer stop()
	req := map[string]any{"execute": command}
	if args != nil {
		req["arguments"] = args
	}
	b, _ := json.Marshal(req)
	if _, err := a.conn.Write(append(b, '\n')); err != nil {
		return agentErr(command, ctx, err)
	}
	for {
		line, err := a.readLine()
		if err != nil {
			return agentErr(command, ctx, err)
		}
		line = bytes.TrimLeft(line, "\xff")
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var resp response
		if err := json.Unmarshal(line, &resp); err != nil {
			return fmt.Errorf("guest agent: %s: %w", command, err)
		}
		if resp.Error != nil {
			return fmt.Errorf("guest agent: %s: %s", command, resp.Error.Desc)
		}
		if out != nil {
			return json.Unmarshal(resp.Return, out)
		}
		return nil
	}
}

// AgentCommand is a program for the agent to run (guest-exec): Path with
// Args and Env (NAME=VALUE) and Input as its standard input, as the
// agent's user (root, as qemu-guest-agent runs).
type AgentCommand struct {
	Path  string
	Args  []string
	Env   []string
	Input []byte
	// Detach starts the program and returns at once: its output is not
	// kept and its status not awaited.
	Detach bool
}

// AgentResult is how a program the agent ran ended: its exit code (128 +
// the signal's number when a signal ended it) and its output, which the
// agent holds until the program ends, up to its limit (16 MiB each).
type AgentResult struct {
	ExitCode       int
	Stdout, Stderr []byte
}

// Exec runs c in the guest and waits for it to end, polling the agent's
// guest-exec-status. When ctx ends first, the program goes on in the
// guest: the agent has no command to end it.
func (a *Agent) Exec(ctx context.Context, c AgentCommand) (AgentResult, error) {
	args := map[string]any{"path": c.Path, "arg": c.Args, "capture-output": !c.Detach}
	if len(c.Env) > 0 {
		args["env"] = c.Env
	}
	if c.Input != nil {
		args["input-data"] = base64.StdEncoding.EncodeToString(c.Input)
	}
	var started struct {
		PID int `json:"pid"`
	}
	if err := a.Execute(ctx, "guest-exec", args, &started); err != nil {
		return AgentResult{}, err
	}
	if c.Detach {
		return AgentResult{}, nil
	}
	wait := 10 * time.Millisecond
	for {
		var st struct {
			Exited       bool   `json:"exited"`
			ExitCode     *int   `json:"exitcode"`
			Signal       *int   `json:"signal"`
			OutData      []byte `json:"out-data"`
			ErrData      []byte `json:"err-data"`
			OutTruncated bool   `json:"out-truncated"`
			ErrTruncated bool   `json:"err-truncated"`
		}
		if err := a.Execute(ctx, "guest-exec-status", map[string]any{"pid": started.PID}, &st); err != nil {
			return AgentResult{}, err
		}
		if st.Exited {
			res := AgentResult{Stdout: st.OutData, Stderr: st.ErrData}
			switch {
			case st.Signal != nil:
				res.ExitCode = 128 + *st.Signal
			case st.ExitCode != nil:
				res.ExitCode = *st.ExitCode
			}
			if st.OutTruncated || st.ErrTruncated {
				return res, fmt.Errorf("guest agent: %s's output is over the agent's limit and was cut", c.Path)
			}
			return res, nil
		}
		select {
		case <-ctx.Done():
			return AgentResult{}, agentErr("guest-exec-status", ctx, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 200*time.Millisecond)
	}
}

// skipTo drops what comes before delim, and delim, keeping none of it:
// a guest may send anything for as long as the sync waits.
func (a *Agent) skipTo(delim byte) error {
	for {
		_, err := a.r.ReadSlice(delim)
		if err != bufio.ErrBufferFull {
			return err
		}
	}
}

// maxAgentLine bounds one answer: the agent's largest, guest-exec-status
// with both outputs at its 16 MiB limit, is some 43 MiB of base64. A
// guest is not trusted to end its lines.
const maxAgentLine = 48 << 20

func (a *Agent) readLine() ([]byte, error) {
	var line []byte
	for {
		chunk, err := a.r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxAgentLine {
			return nil, fmt.Errorf("an answer over %d MiB", maxAgentLine>>20)
		}
		if err != bufio.ErrBufferFull {
			return line, err
		}
	}
}

// Close closes the connection.
func (a *Agent) Close() error { return a.conn.Close() }

// AgentOpen reports whether the guest holds the agent's port open
// (query-chardev's frontend-open for AgentChardev): an agent listens.
func (q *QMP) AgentOpen(ctx context.Context) (bool, error) {
	var chardevs []struct {
		Label        string `json:"label"`
		FrontendOpen bool   `json:"frontend-open"`
	}
	if err := q.Execute(ctx, "query-chardev", nil, &chardevs); err != nil {
		return false, err
	}
	for _, c := range chardevs {
		if c.Label == AgentChardev {
			return c.FrontendOpen, nil
		}
	}
	return false, nil
}
