package vmimage

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

func TestBar(t *testing.T) {
	const MiB = 1 << 20
	type call struct {
		at          time.Duration // since the first call
		done, total int64
	}
	// A 40MiB download; the calls at 50ms and 4s come too soon after a
	// line for a terminal and for a log respectively.
	download := []call{
		{0, 0, 40 * MiB},
		{50 * time.Millisecond, 1 * MiB, 40 * MiB},
		{200 * time.Millisecond, 12*MiB + 300<<10, 40 * MiB},
		{4 * time.Second, 20 * MiB, 40 * MiB},
		{6 * time.Second, 30 * MiB, 40 * MiB},
		{6*time.Second + time.Millisecond, 40 * MiB, 40 * MiB},
		{7 * time.Second, 40 * MiB, 40 * MiB}, // Fetch's call after verifying
	}
	tests := []struct {
		name  string
		tty   bool
		calls []call
		want  string
	}{{
		name:  "terminal",
		tty:   true,
		calls: download,
		want: "\rDownloading d.img 0B/40.0MiB 0%\x1b[K" +
			"\rDownloading d.img 12.3MiB/40.0MiB 30%\x1b[K" +
			"\rDownloading d.img 20.0MiB/40.0MiB 50%\x1b[K" +
			"\rDownloading d.img 30.0MiB/40.0MiB 75%\x1b[K" +
			"\rDownloaded d.img 40.0MiB\x1b[K\n",
	}, {
		name:  "log",
		calls: download,
		want: "Downloading d.img 0B/40.0MiB 0%\n" +
			"Downloading d.img 30.0MiB/40.0MiB 75%\n" +
			"Downloaded d.img 40.0MiB\n",
	}, {
		name: "size unknown until the end",
		calls: []call{
			{0, 500, -1},
			{10 * time.Second, 3 << 30, -1},
			{11 * time.Second, 3<<30 + 1, 3<<30 + 1},
		},
		want: "Downloading d.img 500B\n" +
			"Downloading d.img 3.0GiB\n" +
			"Downloaded d.img 3.0GiB\n",
	}, {
		name:  "resumed",
		calls: []call{{0, 30 * MiB, 40 * MiB}, {time.Second, 40 * MiB, 40 * MiB}},
		want:  "Downloading d.img 30.0MiB/40.0MiB 75%\nDownloaded d.img 40.0MiB\n",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			var now time.Time
			b := &bar{w: &out, name: "d.img", tty: tt.tty, now: func() time.Time { return now }}
			for _, c := range tt.calls {
				now = start.Add(c.at)
				b.update(c.done, c.total)
			}
			if got := out.String(); got != tt.want {
				t.Errorf("output:\n%q\nwant:\n%q", got, tt.want)
			}
		})
	}
}

// TestBarNotTerminal: Bar writes plain lines to what is not a terminal.
func TestBarNotTerminal(t *testing.T) {
	var out bytes.Buffer
	Bar(&out, "d.img")(0, 10)
	f, err := os.Create(t.TempDir() + "/log")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	Bar(f, "d.img")(0, 10)
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range []string{out.String(), string(b)} {
		if want := "Downloading d.img 0B/10B 0%\n"; got != want || strings.Contains(got, "\r") {
			t.Errorf("output %q, want %q", got, want)
		}
	}
}
