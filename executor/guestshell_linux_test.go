//go:build linux

package executor

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/vm"
)

// guestShell drives the root shell the test guest runs on its serial
// console (scripts/images.sh: /init runs sh on /dev/console in a loop),
// through the console's unix socket: commands go in as typed lines,
// their output comes back between two markers the shell prints.
type guestShell struct {
	name string
	conn net.Conn
	seq  int

	mu  sync.Mutex // guards out
	out []byte     // everything read from the console since dialing
}

// dialGuest waits until the VM's /init is done (FOLDUP-READY on its
// console: lease taken, httpd up, shell started) and connects to its
// console. At the end of the test the connection closes; if the test
// failed, the tail of the console log is logged.
func dialGuest(t *testing.T, f vm.Files, name string) *guestShell {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		b, _ := os.ReadFile(f.ConsoleLog())
		if strings.Contains(string(b), "FOLDUP-READY") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no FOLDUP-READY on %s's console in 90 s:\n%s", name, lastChars(string(b), 3000))
		}
		time.Sleep(100 * time.Millisecond)
	}
	conn, err := net.Dial("unix", f.Console())
	if err != nil {
		t.Fatal(err)
	}
	g := &guestShell{name: name, conn: conn}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			g.mu.Lock()
			g.out = append(g.out, buf[:n]...)
			g.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
		if t.Failed() {
			b, _ := os.ReadFile(f.ConsoleLog())
			t.Logf("%s's console, last lines:\n%s", name, lastChars(string(b), 4000))
		}
	})
	// No echo of what is typed and no prompts: the output is then only
	// the commands'.
	g.must(t, "stty -echo; PS1=''; PS2=''")
	return g
}

// run types cmd (one or more lines) into the guest's shell and returns
// what it printed and the exit status of its last command. It fails the
// test if the shell does not finish within timeout.
func (g *guestShell) run(t *testing.T, timeout time.Duration, cmd string) (string, int) {
	t.Helper()
	g.seq++
	// The markers are split by quotes in what is typed, so that an echo
	// of the input can never be taken for them.
	begin := fmt.Sprintf("@@BEGIN-%d@@", g.seq)
	end := regexp.MustCompile(fmt.Sprintf(`@@END-%d-(\d+)@@`, g.seq))
	g.mu.Lock()
	from := len(g.out)
	g.mu.Unlock()
	line := fmt.Sprintf("echo @@BEG''IN-%d@@\n%s\necho @@E''ND-%d-$?@@\n", g.seq, cmd, g.seq)
	if _, err := g.conn.Write([]byte(line)); err != nil {
		t.Fatalf("%s: typing %q: %v", g.name, cmd, err)
	}
	deadline := time.Now().Add(timeout)
	for {
		g.mu.Lock()
		out := strings.ReplaceAll(string(g.out[from:]), "\r", "")
		g.mu.Unlock()
		if i := strings.Index(out, begin+"\n"); i >= 0 {
			rest := out[i+len(begin)+1:]
			if m := end.FindStringSubmatchIndex(rest); m != nil {
				code, _ := strconv.Atoi(rest[m[2]:m[3]])
				return strings.TrimSpace(rest[:m[0]]), code
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %q did not finish in %v; the console since:\n%s", g.name, cmd, timeout, lastChars(out, 2000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// must is run with a 30 s timeout, failing the test unless the command
// exits 0.
func (g *guestShell) must(t *testing.T, cmd string) string {
	t.Helper()
	out, code := g.run(t, 30*time.Second, cmd)
	if code != 0 {
		t.Fatalf("%s: %q exited %d:\n%s", g.name, cmd, code, out)
	}
	return out
}

// netCounters returns a container's IP, ICMP, TCP and UDP counters
// (/proc/net/snmp, /proc/net/snmp6: its own network namespace's), keyed
// like "Icmp.InEchos" and "Icmp6InEchos". A check that a packet did not
// arrive reads them before and after: the receiver's kernel counts what
// it got whatever it then did with it.
func (e *testEnv) netCounters(t *testing.T, ctr string) map[string]int64 {
	t.Helper()
	out, code := e.exec(t, ctr, "cat", "/proc/net/snmp", "/proc/net/snmp6")
	if code != 0 {
		t.Fatalf("reading %s's counters: %s", ctr, out)
	}
	c := map[string]int64{}
	var header []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && !strings.HasSuffix(f[0], ":"): // snmp6: name value
			c[f[0]], _ = strconv.ParseInt(f[1], 10, 64)
		case len(f) > 1 && strings.HasSuffix(f[0], ":") && header != nil && header[0] == f[0]: // snmp: values
			for i := 1; i < len(f) && i < len(header); i++ {
				c[strings.TrimSuffix(f[0], ":")+"."+header[i]], _ = strconv.ParseInt(f[i], 10, 64)
			}
			header = nil
		case len(f) > 1 && strings.HasSuffix(f[0], ":"): // snmp: names
			header = f
		}
	}
	return c
}

// counted runs send and returns by how much each of the named counters
// of container ctr grew meanwhile.
func (e *testEnv) counted(t *testing.T, ctr string, send func(), names ...string) []int64 {
	t.Helper()
	before := e.netCounters(t, ctr)
	send()
	after := e.netCounters(t, ctr)
	out := make([]int64, len(names))
	for i, n := range names {
		if _, ok := after[n]; !ok {
			t.Fatalf("%s has no counter %s", ctr, n)
		}
		out[i] = after[n] - before[n]
	}
	return out
}

// planMember returns the plan's member name, failing the test without it.
func planMember(t *testing.T, pl *planner.Plan, name string) *planner.Member {
	t.Helper()
	for _, m := range pl.Members {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("no member %s in the plan", name)
	return nil
}

func lastChars(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
