package vmimage

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// image is what the test servers serve: 1MiB and a bit of noise, so that
// bytes at a wrong offset change the digest.
var image = func() []byte {
	b := make([]byte, 1<<20+123)
	rand.NewChaCha8([32]byte{'f', 'o', 'l', 'd', 'u', 'p'}).Read(b)
	return b
}()

var imageSum = sum(image)

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// cut is where the servers that fail mid-body stop.
const cut = 300_000

// server is an httptest server on 127.0.0.1 that records the requests it
// gets.
type server struct {
	*httptest.Server
	mu   sync.Mutex // guards reqs
	reqs []string
}

func newServer(t *testing.T, h http.HandlerFunc) *server {
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		line := r.Method
		for _, k := range []string{"Range", "If-Range"} {
			if v := r.Header.Get(k); v != "" {
				line += " " + k + ": " + v
			}
		}
		if ua := r.Header.Get("User-Agent"); ua != userAgent {
			line += " User-Agent: " + ua
		}
		s.mu.Lock()
		s.reqs = append(s.reqs, line)
		s.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// requests returns the requests so far, one line each: the method, then
// Range and If-Range if sent, and User-Agent unless it is foldup's.
func (s *server) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

// serveImage serves image as a well-behaved server does: with an ETag,
// honouring Range and If-Range, and with a 416 for a range past the end.
func serveImage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("ETag", `"v1"`)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(image))
}

// serveHead sends the headers of all of image but only its first cut
// bytes, and returns with the response open.
func serveHead(w http.ResponseWriter) {
	w.Header().Set("ETag", `"v1"`)
	w.Header().Set("Content-Length", strconv.Itoa(len(image)))
	w.WriteHeader(http.StatusOK)
	w.Write(image[:cut])
	http.NewResponseController(w).Flush()
}

// firstThen serves the first request with first and the others with
// serveImage.
func firstThen(first http.HandlerFunc) http.HandlerFunc {
	var once sync.Once
	return func(w http.ResponseWriter, r *http.Request) {
		h := http.HandlerFunc(serveImage)
		once.Do(func() { h = first })
		h(w, r)
	}
}

// ls returns the names in dir.
func ls(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".lock") { // lock files stay
			names = append(names, e.Name())
		}
	}
	return names
}

// checkImage fails t unless path holds image, with the cache's name and
// mode, next to its .url sidecar for rawURL and nothing else.
func checkImage(t *testing.T, dir, path, rawURL string) {
	t.Helper()
	if want := filepath.Join(dir, "sha256-"+imageSum); path != want {
		t.Errorf("path = %s, want %s", path, want)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, image) {
		t.Errorf("%s: %d bytes with sha256 %s, want the image (%d bytes)", path, len(got), sum(got), len(image))
	}
	if got, want := ls(t, dir), []string{"sha256-" + imageSum, "sha256-" + imageSum + ".url"}; !slices.Equal(got, want) {
		t.Errorf("cache holds %q, want %q", got, want)
	}
	if b, err := os.ReadFile(path + ".url"); err != nil || string(b) != rawURL+"\n" {
		t.Errorf(".url sidecar = %q, %v; want %q", b, err, rawURL+"\n")
	}
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != want {
		t.Errorf("%s: mode %v, want %v", path, got, want)
	}
}

func checkRequests(t *testing.T, s *server, want ...string) {
	t.Helper()
	if got := s.requests(); !slices.Equal(got, want) {
		t.Errorf("requests:\n\t%s\nwant:\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// TestFetch downloads an image into a cache directory Fetch creates, under
// a umask that would keep qemu's user out, and verifies it.
func TestFetch(t *testing.T) {
	old := unix.Umask(0o077)
	t.Cleanup(func() { unix.Umask(old) })
	srv := newServer(t, serveImage)
	root := t.TempDir()
	dir := filepath.Join(root, "cache", "images")
	rawURL := srv.URL + "/debian-12.qcow2"

	var calls [][2]int64
	path, err := Fetch(t.Context(), rawURL, strings.ToUpper(imageSum), dir, func(done, total int64) {
		calls = append(calls, [2]int64{done, total})
	})
	if err != nil {
		t.Fatal(err)
	}
	checkImage(t, dir, path, rawURL)
	checkRequests(t, srv, "GET")
	checkMode(t, path, 0o644)
	checkMode(t, path+".url", 0o644)
	checkMode(t, dir, 0o755)
	checkMode(t, filepath.Dir(dir), 0o755)

	n := int64(len(image))
	if len(calls) < 2 || calls[0] != [2]int64{0, n} || calls[len(calls)-1] != [2]int64{n, n} {
		t.Errorf("progress calls %v, want from [0 %d] to [%[2]d %[2]d]", calls, n)
	}
	for i := 1; i < len(calls); i++ {
		if calls[i][0] < calls[i-1][0] || calls[i][1] != n {
			t.Errorf("progress call %d: %v after %v", i, calls[i], calls[i-1])
		}
	}
}

// TestFetchCached finds the image in the cache without a request, even
// when asked for it by another URL.
func TestFetchCached(t *testing.T) {
	srv := newServer(t, serveImage)
	dir := t.TempDir()
	rawURL := srv.URL + "/debian-12.qcow2"
	if _, err := Fetch(t.Context(), rawURL, imageSum, dir, nil); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{rawURL, srv.URL + "/mirror/debian-12.qcow2"} {
		called := false
		path, err := Fetch(t.Context(), u, imageSum, dir, func(int64, int64) { called = true })
		if err != nil {
			t.Fatal(err)
		}
		checkImage(t, dir, path, rawURL)
		if called {
			t.Errorf("%s: progress called on a cache hit", u)
		}
	}
	checkRequests(t, srv, "GET")
}

// TestFetchResumeAfterCut: the server drops the connection mid-body; the
// next Fetch asks for the rest.
func TestFetchResumeAfterCut(t *testing.T) {
	srv := newServer(t, firstThen(func(w http.ResponseWriter, r *http.Request) {
		serveHead(w)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		conn.Close()
	}))
	dir := t.TempDir()
	rawURL := srv.URL + "/debian-12.qcow2"

	_, err := Fetch(t.Context(), rawURL, imageSum, dir, nil)
	if want := "downloading " + rawURL + ": unexpected EOF"; err == nil || err.Error() != want {
		t.Fatalf("first Fetch: %v, want %s", err, want)
	}
	checkResumed(t, srv, dir, rawURL, "the cut")
}

// TestFetchResume starts Fetch on a partial left in the cache, against
// servers that answer its Range request in all the ways they do.
func TestFetchResume(t *testing.T) {
	const u = "/debian-12.qcow2" // after the server's URL
	junk := bytes.Repeat([]byte("x"), 1000)
	tests := []struct {
		name    string
		partial []byte
		meta    string // the partial's .partial.json; "%s" is the image's URL
		serve   http.HandlerFunc
		reqs    []string
		wantErr string // "%s": the URL; else the image must be in the cache
	}{{
		name:    "same file",
		partial: image[:1000],
		meta:    `{"url":"%s","etag":"\"v1\""}`,
		serve:   serveImage,
		reqs:    []string{`GET Range: bytes=1000- If-Range: "v1"`},
	}, {
		name:    "no stored validator",
		partial: image[:1000],
		serve:   serveImage,
		reqs:    []string{`GET Range: bytes=1000-`},
	}, {
		name:    "validator stored for another URL",
		partial: image[:1000],
		meta:    `{"url":"http://example.com/debian-12.qcow2","etag":"\"v1\""}`,
		serve:   serveImage,
		reqs:    []string{`GET Range: bytes=1000-`},
	}, {
		name:    "weak ETag: Last-Modified instead",
		partial: image[:1000],
		meta:    `{"url":"%s","etag":"W/\"v1\"","last_modified":"Mon, 02 Jan 2006 15:04:05 GMT"}`,
		serve:   serveImage, // which has no Last-Modified, so sends it all
		reqs:    []string{`GET Range: bytes=1000- If-Range: Mon, 02 Jan 2006 15:04:05 GMT`},
	}, {
		name:    "file changed on the server",
		partial: junk,
		meta:    `{"url":"%s","etag":"\"v0\""}`,
		serve:   serveImage,
		reqs:    []string{`GET Range: bytes=1000- If-Range: "v0"`},
	}, {
		name:    "server ignores Range",
		partial: junk,
		serve: func(w http.ResponseWriter, r *http.Request) {
			w.Write(image)
		},
		reqs: []string{`GET Range: bytes=1000-`},
	}, {
		name:    "partial complete: 416",
		partial: image,
		meta:    `{"url":"%s","etag":"\"v1\""}`,
		serve:   serveImage,
		reqs:    []string{fmt.Sprintf(`GET Range: bytes=%d- If-Range: "v1"`, len(image))},
	}, {
		name:    "partial longer than the image: 416, start over",
		partial: append(slices.Clip(image), junk...),
		meta:    `{"url":"%s","etag":"\"v1\""}`,
		serve:   serveImage,
		reqs:    []string{fmt.Sprintf(`GET Range: bytes=%d- If-Range: "v1"`, len(image)+len(junk)), "GET"},
	}, {
		name:    "206 for other bytes: start over",
		partial: image[:1000],
		serve: func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Range") == "" {
				serveImage(w, r)
				return
			}
			w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-99/%d", len(image)))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(image[:100])
		},
		reqs: []string{`GET Range: bytes=1000-`, "GET"},
	}, {
		name:    "stale partial without a validator",
		partial: junk,
		serve:   serveImage,
		reqs:    []string{`GET Range: bytes=1000-`},
		wantErr: "sha256 mismatch for %s: expected " + imageSum + ", got " + sum(append(slices.Clip(junk), image[1000:]...)),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, tt.serve)
			rawURL := srv.URL + u
			dir := t.TempDir()
			base := filepath.Join(dir, "sha256-"+imageSum)
			if err := os.WriteFile(base+".partial", tt.partial, 0o644); err != nil {
				t.Fatal(err)
			}
			if tt.meta != "" {
				meta := strings.ReplaceAll(tt.meta, "%s", rawURL)
				if err := os.WriteFile(base+".partial.json", []byte(meta), 0o644); err != nil {
					t.Fatal(err)
				}
			}

			path, err := Fetch(t.Context(), rawURL, imageSum, dir, nil)
			checkRequests(t, srv, tt.reqs...)
			if tt.wantErr != "" {
				if want := fmt.Sprintf(tt.wantErr, rawURL); err == nil || err.Error() != want {
					t.Fatalf("Fetch: %v, want %s", err, want)
				}
				if got := ls(t, dir); len(got) != 0 {
					t.Errorf("cache holds %q after the mismatch, want nothing", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkImage(t, dir, path, rawURL)
		})
	}
}

// TestFetchDigestMismatch removes what it downloaded and says what it
// expected and what it got, from where.
func TestFetchDigestMismatch(t *testing.T) {
	srv := newServer(t, serveImage)
	dir := t.TempDir()
	rawURL := srv.URL + "/debian-12.qcow2"
	want := sum([]byte("another image"))

	_, err := Fetch(t.Context(), rawURL, want, dir, nil)
	wantErr := fmt.Sprintf("sha256 mismatch for %s: expected %s, got %s", rawURL, want, imageSum)
	if err == nil || err.Error() != wantErr {
		t.Fatalf("Fetch: %v, want %s", err, wantErr)
	}
	var de *DigestError
	if !errors.As(err, &de) || de.Got != imageSum {
		t.Errorf("Fetch: %#v, want a *DigestError with Got %s", err, imageSum)
	}
	if got := ls(t, dir); len(got) != 0 {
		t.Errorf("cache holds %q, want nothing", got)
	}
}

// TestFetchCancel cancels a download midway, which leaves a partial that
// the next Fetch resumes.
func TestFetchCancel(t *testing.T) {
	srv := newServer(t, firstThen(func(w http.ResponseWriter, r *http.Request) {
		serveHead(w)
		<-r.Context().Done()
	}))
	dir := t.TempDir()
	rawURL := srv.URL + "/debian-12.qcow2"

	ctx, cancel := context.WithCancel(t.Context())
	_, err := Fetch(ctx, rawURL, imageSum, dir, func(done, total int64) {
		if done >= cut {
			cancel()
		}
	})
	if want := "downloading " + rawURL + ": context canceled"; err == nil || err.Error() != want || !errors.Is(err, context.Canceled) {
		t.Fatalf("Fetch: %v, want %s", err, want)
	}
	checkResumed(t, srv, dir, rawURL, "the cancel")
}

// checkResumed checks that an interrupted Fetch (after what) left a
// partial of cut bytes, and that the next Fetch resumes it with a Range
// request and verifies the image.
func checkResumed(t *testing.T, srv *server, dir, rawURL, what string) {
	t.Helper()
	partial := filepath.Join(dir, "sha256-"+imageSum+".partial")
	if st, err := os.Stat(partial); err != nil || st.Size() != cut {
		t.Fatalf("partial after %s: %v, %v; want %d bytes", what, st, err, cut)
	}
	path, err := Fetch(t.Context(), rawURL, imageSum, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkImage(t, dir, path, rawURL)
	checkRequests(t, srv, "GET", fmt.Sprintf(`GET Range: bytes=%d- If-Range: "v1"`, cut))
}

// TestFetchStall gives up on a server that stops sending, keeping the
// partial.
func TestFetchStall(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		serveHead(w)
		<-r.Context().Done()
	})
	dir := t.TempDir()
	rawURL := srv.URL + "/debian-12.qcow2"
	f := fetcher{client: client, stall: 100 * time.Millisecond}

	_, err := f.fetch(t.Context(), rawURL, imageSum, dir, nil)
	if want := "downloading " + rawURL + ": no data for 100ms"; err == nil || err.Error() != want {
		t.Fatalf("Fetch: %v, want %s", err, want)
	}
	if got, want := ls(t, dir), []string{"sha256-" + imageSum + ".partial", "sha256-" + imageSum + ".partial.json"}; !slices.Equal(got, want) {
		t.Errorf("cache holds %q, want %q", got, want)
	}
}

// holdServer serves the first request for image in two halves: after the
// first it reports on started and waits for release to be closed. It
// serves later requests (which a working lock prevents) at once.
func holdServer(t *testing.T) (s *server, started <-chan struct{}, release chan<- struct{}) {
	start, rel := make(chan struct{}), make(chan struct{})
	s = newServer(t, firstThen(func(w http.ResponseWriter, r *http.Request) {
		serveHead(w)
		close(start)
		select {
		case <-rel:
			w.Write(image[cut:])
		case <-r.Context().Done():
		}
	}))
	return s, start, rel
}

// TestFetchConcurrent runs a second Fetch of an image while the first
// downloads it: the second waits for the lock, then finds the image.
func TestFetchConcurrent(t *testing.T) {
	srv, started, release := holdServer(t)
	dir := t.TempDir()
	rawURL := srv.URL + "/debian-12.qcow2"

	type result struct {
		path string
		err  error
	}
	first, second := make(chan result, 1), make(chan result, 1)
	go func() {
		path, err := Fetch(t.Context(), rawURL, imageSum, dir, nil)
		first <- result{path, err}
	}()
	<-started // the first holds the lock
	waiting := make(chan struct{})
	go func() {
		f := fetcher{client: client, stall: stallTimeout, lockWait: func() { close(waiting) }}
		path, err := f.fetch(t.Context(), rawURL, imageSum, dir, nil)
		second <- result{path, err}
	}()
	select {
	case <-waiting:
	case r := <-second:
		t.Errorf("second Fetch returned (%v) without waiting for the first", r.err)
		second <- r
	}
	close(release)

	for _, ch := range []chan result{first, second} {
		r := <-ch
		if r.err != nil {
			t.Fatal(r.err)
		}
		checkImage(t, dir, r.path, rawURL)
	}
	checkRequests(t, srv, "GET")
}

// TestFetchCancelWhileWaiting gives up waiting for another Fetch's lock
// when the context ends.
func TestFetchCancelWhileWaiting(t *testing.T) {
	srv, started, release := holdServer(t)
	dir := t.TempDir()
	rawURL := srv.URL + "/debian-12.qcow2"

	first := make(chan error, 1)
	go func() {
		_, err := Fetch(t.Context(), rawURL, imageSum, dir, nil)
		first <- err
	}()
	<-started
	ctx, cancel := context.WithCancel(t.Context())
	f := fetcher{client: client, stall: stallTimeout, lockWait: cancel}
	_, err := f.fetch(ctx, rawURL, imageSum, dir, nil)
	lock := filepath.Join(dir, "sha256-"+imageSum+".lock")
	if want := "waiting for the lock on " + lock + ": context canceled"; err == nil || err.Error() != want {
		t.Errorf("second Fetch: %v, want %s", err, want)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	checkRequests(t, srv, "GET")
}

// TestFetchConcurrentProcesses is TestFetchConcurrent with the second
// Fetch in another process, as with two `foldup up` at once.
func TestFetchConcurrentProcesses(t *testing.T) {
	srv, started, release := holdServer(t)
	dir := t.TempDir()
	rawURL := srv.URL + "/debian-12.qcow2"

	first := make(chan error, 1)
	go func() {
		_, err := Fetch(t.Context(), rawURL, imageSum, dir, nil)
		first <- err
	}()
	<-started

	cmd := exec.CommandContext(t.Context(), os.Args[0])
	cmd.Env = append(os.Environ(), "VMIMAGE_HELPER_URL="+rawURL, "VMIMAGE_HELPER_DIR="+dir)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	var out []string
	for lines.Scan() {
		out = append(out, lines.Text())
		if lines.Text() == "helper: waiting" {
			close(release)
			release = nil
		}
	}
	if release != nil { // the helper did not wait: let the first finish
		close(release)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v; its output:\n%s", err, strings.Join(out, "\n"))
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	want := []string{"helper: waiting", "helper: " + filepath.Join(dir, "sha256-"+imageSum)}
	if got := out[:min(len(out), 2)]; !slices.Equal(got, want) {
		t.Errorf("helper said %q, want %q first", out, want)
	}
	checkRequests(t, srv, "GET")
}

// TestMain runs this test binary as TestFetchConcurrentProcesses' other
// process when that test asks it to (not as a test of its own, which
// would show as skipped in every other run).
func TestMain(m *testing.M) {
	if rawURL, dir := os.Getenv("VMIMAGE_HELPER_URL"), os.Getenv("VMIMAGE_HELPER_DIR"); rawURL != "" {
		f := fetcher{client: client, stall: stallTimeout, lockWait: func() { fmt.Println("helper: waiting") }}
		path, err := f.fetch(context.Background(), rawURL, imageSum, dir, nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(1)
		}
		fmt.Println("helper: " + path)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestFetchErrors checks the errors for bad arguments and failed requests,
// and that they leave nothing behind.
func TestFetchErrors(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no such image", http.StatusNotFound)
	})
	tests := []struct {
		url, sum string
		want     string // "%s": the server's URL
	}{
		{"ftp://example.com/debian.qcow2", imageSum, `image URL "ftp://example.com/debian.qcow2": scheme must be http or https`},
		{"file:///var/lib/debian.qcow2", imageSum, `image URL "file:///var/lib/debian.qcow2": scheme must be http or https`},
		{"/var/lib/debian.qcow2", imageSum, `image URL "/var/lib/debian.qcow2": scheme must be http or https`},
		{"http:///debian.qcow2", imageSum, `image URL "http:///debian.qcow2" has no host`},
		{"http://example.com/%zz", imageSum, `image URL: parse "http://example.com/%zz": invalid URL escape "%zz"`},
		{"http://example.com/debian.qcow2", "abc", `sha256 "abc" is not 64 hex digits`},
		{"http://example.com/debian.qcow2", imageSum + "00", `sha256 "` + imageSum + `00" is not 64 hex digits`},
		{"%s/missing.qcow2", imageSum, "downloading %s/missing.qcow2: 404 Not Found"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "images")
			rawURL := strings.ReplaceAll(tt.url, "%s", srv.URL)
			_, err := Fetch(t.Context(), rawURL, tt.sum, dir, nil)
			if want := strings.ReplaceAll(tt.want, "%s", srv.URL); err == nil || err.Error() != want {
				t.Errorf("Fetch: %v\nwant: %s", err, want)
			}
			if got := ls(t, dir); len(got) != 0 {
				t.Errorf("cache holds %q, want nothing", got)
			}
		})
	}
}

func TestDefaultCacheDir(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", "/home/u/.cache")
	want := "/home/u/.cache/foldup/images"
	if os.Geteuid() == 0 {
		want = "/var/cache/foldup/images"
	}
	if got := DefaultCacheDir(); got != want {
		t.Errorf("DefaultCacheDir() = %s, want %s", got, want)
	}
}
