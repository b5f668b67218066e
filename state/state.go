//go:build linux

// Package state keeps a project's state on disk: its directories, its
// lock and the host's, the journal of everything up makes, and the plan
// last applied.
package state

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/foldup/foldup/internal/atomicfile"
	"github.com/foldup/foldup/internal/crashhook"
	"github.com/foldup/foldup/planner"
	"golang.org/x/sys/unix"
)

// Default roots of a project's state (kept across reboots: journal, plan,
// leases) and of its run-time files (supervisor socket and pid).
const (
	DefaultStateRoot = "/var/lib/foldup"
	DefaultRunRoot   = "/run/foldup"
)

// Dirs are one project's directories.
type Dirs struct {
	State string // <StateRoot>/<project>: kept across reboots
	Run   string // <RunRoot>/<project>: sockets and pids
}

// For returns the directories of project under the two roots.
func For(stateRoot, runRoot, project string) Dirs {
	return Dirs{State: filepath.Join(stateRoot, project), Run: filepath.Join(runRoot, project)}
}

func (d Dirs) LockFile() string    { return filepath.Join(d.State, "lock") }
func (d Dirs) JournalFile() string { return filepath.Join(d.State, "journal") }
func (d Dirs) PlanFile() string    { return filepath.Join(d.State, "plan.json") }
func (d Dirs) FilesFile() string   { return filepath.Join(d.State, "files") } // up's config files, one a line (ls)
func (d Dirs) LeaseFile() string   { return filepath.Join(d.State, "leases.json") }
func (d Dirs) LogFile() string     { return filepath.Join(d.State, "supervisor.log") }
func (d Dirs) Socket() string      { return filepath.Join(d.Run, "supervisor.sock") }
func (d Dirs) PidFile() string     { return filepath.Join(d.Run, "supervisor.pid") }

func (d Dirs) Make() error {
	if err := os.MkdirAll(d.State, 0o700); err != nil {
		return err
	}
	return os.MkdirAll(d.Run, 0o700)
}

// Lock takes the project's lock, waiting for another foldup that holds it
// (a second `up`, a `down`). It returns the function that releases it.
// The lock is an flock: the kernel drops it when its holder dies. Releasing
// it removes the project's directories if they hold nothing but the lock
// file (an up that failed before making anything, a down of a project
// that never ran): whoever was waiting on that file then holds the lock
// of a file no longer at its path, which locks nothing, and tries again.
func (d Dirs) Lock(wait func()) (func(), error) {
	for try := 0; ; try++ {
		if err := d.Make(); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(d.LockFile(), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
		if errors.Is(err, fs.ErrNotExist) && try < 100 {
			continue // the directory was removed between make and open
		}
		if err != nil {
			return nil, err
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); errors.Is(err, unix.EWOULDBLOCK) {
			if wait != nil && try == 0 {
				wait()
			}
			err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", d.LockFile(), err)
		}
		var held, there unix.Stat_t
		if unix.Fstat(int(f.Fd()), &held) == nil && unix.Stat(d.LockFile(), &there) == nil &&
			held.Dev == there.Dev && held.Ino == there.Ino {
			return func() {
				d.removeIfUnused()
				f.Close()
			}, nil
		}
		f.Close()
		if try >= 100 {
			return nil, fmt.Errorf("locking %s: the file keeps being replaced", d.LockFile())
		}
	}
}

// LockHost takes the lock that every project's up holds while it chooses
// subnets and host ports and makes its bridges: an flock of the state
// root itself, so that two projects coming up at once cannot both take
// what looked free to each. d.Lock has made the root.
func (d Dirs) LockHost() (func(), error) {
	root := filepath.Dir(d.State)
	f, err := os.Open(root)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", root, err)
	}
	var once sync.Once
	return func() { once.Do(func() { f.Close() }) }, nil
}

// OtherPlans returns the plans of the other projects under the state
// root: those that are up, or were and are not down. A plan that cannot
// be read is that project's trouble, not this one's, and is left out.
func (d Dirs) OtherPlans() map[string]*planner.Plan {
	root := filepath.Dir(d.State)
	entries, _ := os.ReadDir(root)
	plans := map[string]*planner.Plan{}
	for _, en := range entries {
		if !en.IsDir() || en.Name() == filepath.Base(d.State) {
			continue
		}
		if pl, err := LoadPlan(filepath.Join(root, en.Name(), "plan.json")); err == nil && pl != nil {
			plans[en.Name()] = pl
		}
	}
	return plans
}

// Projects are the names of the projects under the state root that are
// up, or were and are not down (they have a plan).
func Projects(stateRoot string) []string {
	entries, _ := os.ReadDir(stateRoot)
	var out []string
	for _, en := range entries {
		if en.IsDir() {
			if _, err := os.Stat(filepath.Join(stateRoot, en.Name(), "plan.json")); err == nil {
				out = append(out, en.Name())
			}
		}
	}
	return out
}

// removeIfUnused removes the project's directories when they hold nothing
// but the lock file, and the roots above them if they are empty then: bad
// input leaves no trace. Anything up makes is in its journal first, so a
// project with no journal has nothing. The caller holds the lock.
func (d Dirs) removeIfUnused() {
	entries, err := os.ReadDir(d.State)
	if err != nil || len(entries) != 1 || entries[0].Name() != filepath.Base(d.LockFile()) {
		return
	}
	if run, err := os.ReadDir(d.Run); err != nil || len(run) > 0 {
		return
	}
	os.Remove(d.LockFile())
	for _, dir := range []string{d.State, d.Run, filepath.Dir(d.State), filepath.Dir(d.Run)} {
		os.Remove(dir) // only if empty
	}
}

// Journal entry kinds: what up makes, in the order it may make them.
const (
	KindBridge        = "bridge"         // Name: the Linux bridge
	KindDockerAccept  = "docker-accept"  // Name: the bridge whose DOCKER-USER accept it is
	KindFirewall      = "firewall"       // Name: the project
	KindDockerNetwork = "docker-network" // Name: Docker's name for it
	KindVolume        = "volume"         // Name: Docker's name for it
	KindSupervisor    = "supervisor"     // Name: the project
	KindContainer     = "container"      // Name: the container's name
	KindImage         = "image"          // Name: an image foldup built
	KindTap           = "tap"            // Name: a VM's tap
	KindIfb           = "ifb"            // Name: the ifb device of a member's netem on what it sends
	KindVM            = "vm"             // Name: the VM (member) whose qemu it is
)

// Entry is one line of the journal: something up is about to make.
type Entry struct {
	Kind string    `json:"kind"`
	Name string    `json:"name"`
	Time time.Time `json:"time"`
}

// Journal is the append-only record of everything up makes, written and
// synced before each thing is made, so that down can remove all of it
// whatever point up died at. down walks it backwards.
type Journal struct {
	mu      sync.Mutex // steps record concurrently
	f       *os.File
	seen    map[Entry]bool
	written int // entries this process wrote
}

// OpenJournal opens the journal at path for appending.
func OpenJournal(path string) (*Journal, error) {
	entries, err := ReadJournal(path)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	j := &Journal{f: f, seen: map[Entry]bool{}}
	for _, e := range entries {
		j.seen[Entry{Kind: e.Kind, Name: e.Name}] = true
	}
	return j, nil
}

// Record writes that kind/name is about to be made, unless the journal
// has it already.
func (j *Journal) Record(kind, name string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	k := Entry{Kind: kind, Name: name}
	if j.seen[k] {
		return nil
	}
	crashhook.After(j.written)
	b, err := json.Marshal(Entry{Kind: kind, Name: name, Time: time.Now().UTC()})
	if err != nil {
		return err
	}
	if _, err := j.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("writing journal: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("syncing journal: %w", err)
	}
	j.seen[k] = true
	j.written++
	crashhook.At(j.written)
	return nil
}

// Close closes the journal.
func (j *Journal) Close() error { return j.f.Close() }

// Made says that everything the journal names is made: the crash tests'
// last kill point.
func (j *Journal) Made() {
	j.mu.Lock()
	defer j.mu.Unlock()
	crashhook.After(j.written)
}

// ReadJournal returns the journal's entries, oldest first. A missing
// journal has none. A last line cut short by a crash is ignored (it was
// being written, so what it names was not made yet); any other bad line is
// an error.
func ReadJournal(path string) ([]Entry, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Entry
	sc := bufio.NewScanner(f)
	line := 0
	var bad error
	for sc.Scan() {
		line++
		if bad != nil {
			return nil, bad
		}
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Kind == "" || e.Name == "" {
			bad = fmt.Errorf("%s:%d: corrupt journal entry %q (down --force removes the project by its labels and names)", path, line, sc.Text())
			continue
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// WriteFileAtomic writes data to path, mode 0600, so that readers (and
// the next run after a crash) see the old content or the new, never a part.
func WriteFileAtomic(path string, data []byte) error {
	return atomicfile.WriteFile(path, data, 0o600)
}

// SavePlan writes the plan applied.
func SavePlan(path string, p *planner.Plan) error {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, append(b, '\n'))
}

// LoadPlan returns the plan last applied, or nil when there is none.
func LoadPlan(path string) (*planner.Plan, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var p planner.Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%s: %w (down --force removes the project by its labels and names)", path, err)
	}
	return &p, nil
}

// StoppedFile marks a project stopped on purpose (stop, or Ctrl-C of a
// foreground up): no foldup command restarts its supervisor then.
func (d Dirs) StoppedFile() string { return filepath.Join(d.State, "stopped") }

// ReadPid returns the pid a pid file holds, or 0.
func ReadPid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// Alive says whether process pid runs: a zombie (a child not yet reaped)
// does not.
func Alive(pid int) bool {
	if err := unix.Kill(pid, 0); err != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}
