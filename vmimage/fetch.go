package vmimage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// DigestError reports a download whose sha256 is not the one asked for.
// Fetch has removed what it downloaded.
type DigestError struct {
	URL  string
	Want string // lowercase hex
	Got  string // lowercase hex
}

func (e *DigestError) Error() string {
	return fmt.Sprintf("sha256 mismatch for %s: expected %s, got %s", e.URL, e.Want, e.Got)
}

const (
	userAgent = "foldup"

	// stallTimeout bounds the wait for the next bytes of a body. There is
	// no bound on the whole body: a big image on a slow link may take an
	// hour and still be fine.
	stallTimeout = 2 * time.Minute
)

// client connects and waits for headers with timeouts, reads bodies
// without one (fetcher.stall watches them), takes its proxy from the
// environment, and asks for no compression: the digest is over the bytes
// as served, and offsets in a Range must count those bytes too.
var client = &http.Client{
	Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: time.Minute,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          10,
		DisableCompression:    true,
	},
}

// Fetch returns the path of the image at rawURL whose sha256 is sha256hex,
// downloading it into cacheDir unless it is there already (then it makes no
// request). rawURL must be http or https.
//
// A download goes to a .partial file, which the next Fetch resumes with a
// Range request if this one is interrupted (ctx ends, the connection
// drops); a server that ignores the Range or whose file changed (If-Range)
// sends it all again. The whole file is checked against sha256hex before it
// is renamed into place; on a mismatch Fetch removes it and returns a
// *DigestError. Fetches of one image, in one process or several, take turns
// on a lock; the later ones find the image in the cache.
//
// Other failures: an HTTP status other than 200, 206 or 416 gives an
// error naming the status and the URL; the end of ctx gives one that wraps
// ctx.Err(); a server that sends nothing for two minutes is given up on.
// All of them keep what was downloaded for the next Fetch to resume.
//
// progress, if not nil, is called as bytes arrive with the bytes had so far
// (a resumed download starts above 0) and the image's size, or -1 when the
// server does not say; once the image is verified it is called with
// done == total. It is not called when the image is in the cache.
func Fetch(ctx context.Context, rawURL, sha256hex, cacheDir string, progress func(done, total int64)) (path string, err error) {
	f := fetcher{client: client, stall: stallTimeout}
	return f.fetch(ctx, rawURL, sha256hex, cacheDir, progress)
}

// fetcher is Fetch with test seams.
type fetcher struct {
	client   *http.Client
	stall    time.Duration // longest wait for more body bytes
	lockWait func()        // if not nil, called when another Fetch holds the image's lock
}

func (f *fetcher) fetch(ctx context.Context, rawURL, sha256hex, cacheDir string, progress func(done, total int64)) (string, error) {
	want, err := parseDigest(sha256hex)
	if err != nil {
		return "", err
	}
	if err := checkURL(rawURL); err != nil {
		return "", err
	}
	if progress == nil {
		progress = func(int64, int64) {}
	}
	c := cache{dir: cacheDir, name: "sha256-" + want}
	if ok, err := c.has(); err != nil {
		return "", err
	} else if ok {
		return c.image(), nil
	}
	if err := mkdirAll(cacheDir); err != nil {
		return "", fmt.Errorf("creating image cache: %w", err)
	}
	unlock, err := f.lock(ctx, c.lock())
	if err != nil {
		return "", err
	}
	defer unlock()
	// Another Fetch may have finished the image while we waited.
	if ok, err := c.has(); err != nil {
		return "", err
	} else if ok {
		return c.image(), nil
	}
	if err := f.download(ctx, rawURL, want, c, progress); err != nil {
		return "", err
	}
	return c.image(), nil
}

func parseDigest(s string) (string, error) {
	s = strings.ToLower(s)
	if b, err := hex.DecodeString(s); err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("sha256 %q is not 64 hex digits", s)
	}
	return s, nil
}

func checkURL(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("image URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("image URL %q: scheme must be http or https", rawURL)
	}
	if u.Host == "" {
		return fmt.Errorf("image URL %q has no host", rawURL)
	}
	return nil
}

// cache names one image's files in the cache directory.
type cache struct {
	dir  string
	name string // sha256-<hex>
}

func (c cache) image() string   { return filepath.Join(c.dir, c.name) }
func (c cache) url() string     { return filepath.Join(c.dir, c.name+".url") }
func (c cache) partial() string { return filepath.Join(c.dir, c.name+".partial") }
func (c cache) meta() string    { return filepath.Join(c.dir, c.name+".partial.json") }
func (c cache) lock() string    { return filepath.Join(c.dir, c.name+".lock") }

// has reports whether the verified image is in the cache.
func (c cache) has() (bool, error) {
	_, err := os.Stat(c.image())
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("image cache: %w", err)
	}
	return true, nil
}

// meta is what a later Fetch needs to resume the partial safely: the
// server's validators for the file it came from, sent back as If-Range.
type meta struct {
	URL          string `json:"url"`
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
}

// ifRange returns the validator to send with a Range request for rawURL,
// or "" to send none (then the digest alone catches a changed file).
func (c cache) ifRange(rawURL string) string {
	b, err := os.ReadFile(c.meta())
	if err != nil {
		return ""
	}
	var m meta
	if json.Unmarshal(b, &m) != nil || m.URL != rawURL {
		return ""
	}
	// If-Range takes only a strong ETag.
	if m.ETag != "" && !strings.HasPrefix(m.ETag, "W/") {
		return m.ETag
	}
	return m.LastModified
}

// download fetches the image into its partial, resuming what is there,
// verifies it, and renames it into place. The caller holds the lock.
func (f *fetcher) download(ctx context.Context, rawURL, want string, c cache, progress func(done, total int64)) (err error) {
	file, err := os.OpenFile(c.partial(), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("downloading %s: %w", rawURL, err)
	}
	defer func() {
		// Keep a partial only if it has something to resume.
		if st, serr := file.Stat(); err != nil && serr == nil && st.Size() == 0 {
			os.Remove(c.partial())
			os.Remove(c.meta())
		}
		file.Close()
	}()
	if err := file.Chmod(0o644); err != nil { // whatever the umask: qemu may run as another user
		return fmt.Errorf("downloading %s: %w", rawURL, err)
	}
	got := "" // the partial's digest, once known
	for {
		size, err := file.Seek(0, io.SeekEnd)
		if err != nil {
			return fmt.Errorf("downloading %s: %w", rawURL, err)
		}
		res, err := f.get(ctx, rawURL, file, size, c, progress)
		if err != nil {
			return err
		}
		if res == appended {
			break
		}
		if res == rangeNotSatisfiable {
			// Nothing lies past the partial's end: a Fetch got all of it
			// but was stopped before the rename, or the partial is longer
			// than the image. Only the digest can tell.
			if got, err = digest(file); err == nil && got == want {
				break
			}
			got = ""
		}
		// Start over. get only asks for a Range when the partial is not
		// empty, so this happens at most once.
		if err := file.Truncate(0); err != nil {
			return fmt.Errorf("downloading %s: %w", rawURL, err)
		}
		os.Remove(c.meta())
	}

	if got == "" {
		if got, err = digest(file); err != nil {
			return fmt.Errorf("verifying %s: %w", file.Name(), err)
		}
	}
	if got != want {
		os.Remove(c.partial())
		os.Remove(c.meta())
		return &DigestError{URL: rawURL, Want: want, Got: got}
	}
	if err := c.commit(file, rawURL); err != nil {
		return fmt.Errorf("storing %s: %w", rawURL, err)
	}
	st, err := os.Stat(c.image())
	if err != nil {
		return fmt.Errorf("storing %s: %w", rawURL, err)
	}
	progress(st.Size(), st.Size())
	return nil
}

// result is how a request for the rest of a partial went.
type result int

const (
	appended            result = iota // the body went into the partial
	rangeNotSatisfiable               // 416: nothing past the partial's end
	wrongRange                        // a 206 for other bytes than asked
)

// get asks for the image from byte size on (everything when size is 0)
// and appends the response to file, or, when the server sends the whole
// image instead, replaces file's content with it.
func (f *fetcher) get(ctx context.Context, rawURL string, file *os.File, size int64, c cache, progress func(done, total int64)) (result, error) {
	parent := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return 0, fmt.Errorf("downloading %s: %w", rawURL, err)
	}
	req.Header.Set("User-Agent", userAgent)
	if size > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", size))
		if v := c.ifRange(rawURL); v != "" {
			req.Header.Set("If-Range", v)
		}
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return 0, err // a *url.Error: it names the method and URL
	}
	defer resp.Body.Close()

	var start, total int64
	switch {
	case resp.StatusCode == http.StatusOK:
		// All of it: a first download, a server that ignores Range, or a
		// file that changed since the partial began (If-Range).
		if err := file.Truncate(0); err != nil {
			return 0, fmt.Errorf("downloading %s: %w", rawURL, err)
		}
		m := meta{URL: rawURL, ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified")}
		b, _ := json.Marshal(m)
		if err := os.WriteFile(c.meta(), b, 0o644); err != nil {
			return 0, fmt.Errorf("downloading %s: %w", rawURL, err)
		}
		total = resp.ContentLength
	case resp.StatusCode == http.StatusPartialContent && size > 0:
		var ok bool
		start, total, ok = parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != size {
			return wrongRange, nil
		}
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && size > 0:
		return rangeNotSatisfiable, nil
	default:
		return 0, fmt.Errorf("downloading %s: %s", rawURL, resp.Status)
	}
	if _, err := file.Seek(start, io.SeekStart); err != nil {
		return 0, fmt.Errorf("downloading %s: %w", rawURL, err)
	}

	stall := fmt.Errorf("no data for %v", f.stall)
	timer := time.AfterFunc(f.stall, func() { cancel(stall) })
	defer timer.Stop()
	done := start
	progress(done, total)
	buf := make([]byte, 256<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			timer.Reset(f.stall)
			if _, err := file.Write(buf[:n]); err != nil {
				return 0, fmt.Errorf("downloading %s: %w", rawURL, err)
			}
			done += int64(n)
			progress(done, total)
		}
		switch {
		case rerr == io.EOF:
			return appended, nil
		case parent.Err() != nil:
			return 0, fmt.Errorf("downloading %s: %w", rawURL, parent.Err())
		case context.Cause(ctx) == stall:
			return 0, fmt.Errorf("downloading %s: %w", rawURL, stall)
		case rerr != nil:
			return 0, fmt.Errorf("downloading %s: %w", rawURL, rerr)
		}
	}
}

// parseContentRange parses "bytes first-last/size" (size may be "*",
// returned as -1).
func parseContentRange(s string) (start, total int64, ok bool) {
	s, ok = strings.CutPrefix(s, "bytes ")
	if !ok {
		return 0, 0, false
	}
	rng, size, ok := strings.Cut(s, "/")
	if !ok {
		return 0, 0, false
	}
	first, _, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, false
	}
	start, err := strconv.ParseInt(first, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	if size == "*" {
		return start, -1, true
	}
	total, err = strconv.ParseInt(size, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return start, total, true
}

// digest returns the sha256 of file's content, in lowercase hex.
func digest(file *os.File) (string, error) {
	st, err := file.Stat()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(file, 0, st.Size())); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// commit makes the verified partial the image: it syncs it, writes the
// .url sidecar, renames the partial into place and syncs the directory, so
// that after a crash the image is either absent or whole.
func (c cache) commit(file *os.File, rawURL string) error {
	if err := file.Sync(); err != nil {
		return err
	}
	if err := writeFileSync(c.url(), []byte(rawURL+"\n")); err != nil {
		return err
	}
	if err := os.Rename(c.partial(), c.image()); err != nil {
		return err
	}
	os.Remove(c.meta())
	return syncDir(c.dir)
}

func writeFileSync(name string, b []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}

// mkdirAll is os.MkdirAll, except that the directories it makes are 0755
// whatever the umask, so that qemu running as another user can reach the
// images.
func mkdirAll(dir string) error {
	st, err := os.Stat(dir)
	if err == nil {
		if !st.IsDir() {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: errors.New("not a directory")}
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := mkdirAll(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) { // made by a concurrent Fetch
			return nil
		}
		return err
	}
	return os.Chmod(dir, 0o755)
}

// DefaultCacheDir is where foldup keeps downloaded images:
// /var/cache/foldup/images when running as root, else foldup/images under
// the user's cache directory ($XDG_CACHE_HOME, or ~/.cache). Without a
// home directory it falls back to the root's, which Fetch then reports it
// cannot create or write.
func DefaultCacheDir() string {
	const system = "/var/cache/foldup/images"
	if os.Geteuid() == 0 {
		return system
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return system
	}
	return filepath.Join(dir, "foldup", "images")
}
