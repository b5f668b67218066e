package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// QMP is a connection to a qemu's QMP socket, past the capabilities
// handshake. Commands may be issued from several goroutines; events are
// delivered on Events until the connection ends.
type QMP struct {
	conn    net.Conn
	Version struct {
		Qemu struct{ Major, Minor, Micro int } `json:"qemu"`
	}

	mu      sync.Mutex
	nextID  int
	pending map[string]chan response
	events  chan Event
	err     error
	done    chan struct{}
}

// Event is a QMP event, such as SHUTDOWN or POWERDOWN.
type Event struct {
	Event     string          `json:"event"`
	Data      json.RawMessage `json:"data"`
	Timestamp struct {
		Seconds      int64 `json:"seconds"`
		Microseconds int64 `json:"microseconds"`
	} `json:"timestamp"`
}

// Reason is a SHUTDOWN event's reason: guest-shutdown (the guest powered
// off), host-qmp-quit, host-signal, guest-panic, ...; "" for other events.
func (e Event) Reason() string {
	var d struct {
		Reason string `json:"reason"`
	}
	json.Unmarshal(e.Data, &d)
	return d.Reason
}

// Error is an error qemu answered a command with.
type Error struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

func (e *Error) Error() string { return "qmp: " + e.Class + ": " + e.Desc }

type response struct {
	Return json.RawMessage `json:"return"`
	Error  *Error          `json:"error"`
	ID     string          `json:"id"`
	Event  string          `json:"event"`
}

// DialQMP connects to the QMP socket at path and negotiates capabilities.
func DialQMP(ctx context.Context, path string) (*QMP, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	r := bufio.NewReader(conn)
	var greeting struct {
		QMP *struct {
			Version struct {
				Qemu struct{ Major, Minor, Micro int } `json:"qemu"`
			} `json:"version"`
		} `json:"QMP"`
	}
	line, err := r.ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &greeting)
	}
	if err == nil && greeting.QMP == nil {
		err = fmt.Errorf("not a QMP greeting: %.80s", line)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("qmp %s: %w", path, err)
	}
	q := &QMP{conn: conn, pending: map[string]chan response{}, events: make(chan Event, 64), done: make(chan struct{})}
	q.Version.Qemu = greeting.QMP.Version.Qemu
	conn.SetDeadline(time.Time{})
	go q.read(r)
	if err := q.Execute(ctx, "qmp_capabilities", nil, nil); err != nil {
		q.Close()
		return nil, err
	}
	return q, nil
}

func (q *QMP) read(r *bufio.Reader) {
	defer close(q.done)
	defer close(q.events)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			q.mu.Lock()
			q.err = err
			for id, c := range q.pending {
				close(c)
				delete(q.pending, id)
			}
			q.mu.Unlock()
			return
		}
		var resp response
		if json.Unmarshal(line, &resp) != nil {
			continue
		}
		if resp.Event != "" {
			var ev Event
			json.Unmarshal(line, &ev)
			select {
			case q.events <- ev:
			default: // nobody listens: drop rather than stall the replies
			}
			continue
		}
		q.mu.Lock()
		c := q.pending[resp.ID]
		delete(q.pending, resp.ID)
		q.mu.Unlock()
		if c != nil {
			c <- resp
		}
	}
}

// Execute runs command with args (nil for none) and decodes its return
// value into out (nil to ignore it).
func (q *QMP) Execute(ctx context.Context, command string, args, out any) error {
	q.mu.Lock()
	if q.err != nil {
		err := q.err
		q.mu.Unlock()
		return fmt.Errorf("qmp %s: connection closed: %w", command, err)
	}
	q.nextID++
	id := fmt.Sprint(q.nextID)
	c := make(chan response, 1)
	q.pending[id] = c
	q.mu.Unlock()

	req := map[string]any{"execute": command, "id": id}
	if args != nil {
		req["arguments"] = args
	}
	b, _ := json.Marshal(req)
	if _, err := q.conn.Write(append(b, '\n')); err != nil {
		q.mu.Lock()
		delete(q.pending, id)
		q.mu.Unlock()
		return fmt.Errorf("qmp %s: %w", command, err)
	}
	select {
	case resp, ok := <-c:
		if !ok {
			return fmt.Errorf("qmp %s: connection closed", command)
		}
		if resp.Error != nil {
			return resp.Error
		}
		if out != nil {
			return json.Unmarshal(resp.Return, out)
		}
		return nil
	case <-ctx.Done():
		q.mu.Lock()
		delete(q.pending, id)
		q.mu.Unlock()
		return ctx.Err()
	}
}

// Events delivers qemu's events; it is closed when the connection ends
// (qemu has exited, or Close).
func (q *QMP) Events() <-chan Event { return q.events }

// Done is closed when the connection has ended.
func (q *QMP) Done() <-chan struct{} { return q.done }

// Status is query-status: "running", "paused", "shutdown", ...
func (q *QMP) Status(ctx context.Context) (string, error) {
	var st struct {
		Status string `json:"status"`
	}
	err := q.Execute(ctx, "query-status", nil, &st)
	return st.Status, err
}

// KVM reports whether the VM runs with KVM (query-kvm).
func (q *QMP) KVM(ctx context.Context) (bool, error) {
	var st struct {
		Enabled bool `json:"enabled"`
	}
	err := q.Execute(ctx, "query-kvm", nil, &st)
	return st.Enabled, err
}

// Powerdown presses the VM's ACPI power button.
func (q *QMP) Powerdown(ctx context.Context) error {
	return q.Execute(ctx, "system_powerdown", nil, nil)
}

// Quit ends qemu at once. The connection ending is its success: qemu may
// close it before it answers.
func (q *QMP) Quit(ctx context.Context) error {
	var qe *Error
	if err := q.Execute(ctx, "quit", nil, nil); errors.As(err, &qe) {
		return err
	}
	select {
	case <-q.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close closes the connection.
func (q *QMP) Close() error { return q.conn.Close() }
