//go:build linux

package executor

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/volume"
	"github.com/foldup/foldup/containers"
)

const threeTier = `
name: tiers
services:
  db:
    image: foldup-test/busybox:1
    init: true
    command: ["sh", "-c", "sleep 2; echo ok > /data/ready; echo db up; exec sleep 3600"]
    healthcheck:
      test: ["CMD", "test", "-f", "/data/ready"]
      interval: 500ms
      retries: 20
    volumes: ["data:/data"]
  migrate:
    image: foldup-test/busybox:1
    command: ["sh", "-c", "sleep 1; echo migrated"]
  web:
    image: foldup-test/busybox:1
    init: true
    environment:
      COLOUR: blue
    command: ["sh", "-c", "echo web up; exec sleep 3600"]
    depends_on:
      db: {condition: service_healthy}
      migrate: {condition: service_completed_successfully}
volumes:
  data: {}
dns:
  - {name: answer, txt: ["forty-two"]}
`

// TestUpDown brings up a three-service project on a private engine and
// checks the order depends_on asks for, health in ps, names through
// foldup's DNS, that a second up changes nothing, that a changed member is
// recreated alone, and that down removes everything but the named volume,
// which down -v removes.
func TestUpDown(t *testing.T) {
	e := newTestEnv(t)
	p, res := e.upInProcess(t, "tiers", threeTier)
	ctx := t.Context()

	// Order: web started only after db was healthy and migrate had exited 0.
	inspect := func(name string) (started, finished time.Time, id string) {
		c, err := e.eng.Client.ContainerInspect(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := time.Parse(time.RFC3339Nano, c.State.StartedAt)
		f, _ := time.Parse(time.RFC3339Nano, c.State.FinishedAt)
		return s, f, c.ID
	}
	webStart, _, webID := inspect("tiers-web-1")
	_, migrateEnd, _ := inspect("tiers-migrate-1")
	dbStart, _, dbID := inspect("tiers-db-1")
	if !webStart.After(migrateEnd) {
		t.Errorf("web started at %v, before migrate finished at %v", webStart, migrateEnd)
	}
	if webStart.Sub(dbStart) < 2*time.Second {
		t.Errorf("web started %v after db; db becomes healthy only after 2 s", webStart.Sub(dbStart))
	}

	// ps: health and state as JSON.
	list, err := New(e.o).Ps(ctx, p.Name, true)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]MemberStatus{}
	for _, m := range list {
		got[m.Member] = m
	}
	if got["db"].Health != "healthy" || got["db"].State != "running" {
		t.Errorf("db: %+v, want running and healthy", got["db"])
	}
	if got["migrate"].State != "exited" || got["migrate"].ExitCode != 0 {
		t.Errorf("migrate: %+v, want exited 0", got["migrate"])
	}
	if len(got["web"].Addresses) == 0 {
		t.Errorf("web has no addresses in ps: %+v", got["web"])
	}

	// DNS: web asks foldup's server (the gateway) for db and for the
	// project's TXT record, and Docker's resolver forwards to it too.
	gw := res.Plan.Networks[0].Gateway4.String()
	dom := res.Plan.Domain
	out, code := e.exec(t, "tiers-web-1", "nslookup", "db."+dom, gw)
	if code != 0 || !strings.Contains(out, got["db"].Addresses[0]) {
		t.Errorf("nslookup db.%s via %s (exit %d):\n%s\nwant %s", dom, gw, code, out, got["db"].Addresses[0])
	}
	out, code = e.exec(t, "tiers-web-1", "nslookup", "-type=txt", "answer."+dom)
	if code != 0 || !strings.Contains(out, "forty-two") {
		t.Errorf("TXT answer.%s through Docker's resolver (exit %d):\n%s", dom, code, out)
	}

	// Anti-spoofing: web's veth is a member port of foldup's bridge table,
	// with the plan's MAC.
	var webMAC string
	for _, m := range res.Plan.Members {
		if m.Name == "web" {
			webMAC = m.NICs[0].MAC
		}
	}
	table := e.ns.MustRun(t, "nft", "list", "table", "bridge", "foldup-tiers")
	if webMAC == "" || !strings.Contains(table, "\"veth") || !strings.Contains(table, webMAC) {
		t.Errorf("web's port (MAC %s) is not in the bridge table:\n%s", webMAC, table)
	}

	// logs: each member's output, prefixed.
	var buf bytes.Buffer
	if err := New(e.o).Logs(ctx, p.Name, LogOptions{NoColor: true}, &buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"db-1       | db up", "migrate-1  | migrated", "web-1      | web up"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, buf.String())
		}
	}

	// A second up with nothing changed changes nothing.
	if _, err := New(e.o).Up(ctx, p, UpOptions{InProcess: true}); err != nil {
		t.Fatal(err)
	}
	if _, _, id := inspect("tiers-web-1"); id != webID {
		t.Errorf("second up recreated web")
	}
	if _, _, id := inspect("tiers-db-1"); id != dbID {
		t.Errorf("second up recreated db")
	}

	// A changed member is recreated; the others are untouched.
	p2 := e.load(t, "tiers", strings.Replace(threeTier, "COLOUR: blue", "COLOUR: red", 1))
	if _, err := New(e.o).Up(ctx, p2, UpOptions{InProcess: true}); err != nil {
		t.Fatal(err)
	}
	if _, _, id := inspect("tiers-web-1"); id == webID {
		t.Errorf("changed web was not recreated")
	}
	if _, _, id := inspect("tiers-db-1"); id != dbID {
		t.Errorf("db was recreated though it did not change")
	}
	out, _ = e.exec(t, "tiers-web-1", "sh", "-c", "echo $COLOUR")
	if strings.TrimSpace(out) != "red" {
		t.Errorf("web's COLOUR = %q, want red", out)
	}

	// down keeps the named volume; down -v removes it.
	res.Supervisor.Stop()
	if err := New(e.o).Down(ctx, p.Name, DownOptions{}); err != nil {
		t.Fatal(err)
	}
	vols, err := e.eng.Client.VolumeList(ctx, volume.ListOptions{Filters: containers.ProjectFilter(p.Name)})
	if err != nil || len(vols.Volumes) != 1 {
		t.Fatalf("after down: volumes %v (%v), want tiers_data kept", vols.Volumes, err)
	}
	if err := New(e.o).Down(ctx, p.Name, DownOptions{Volumes: true}); err != nil {
		t.Fatal(err)
	}
	e.assertGone(t, p.Name)
}
