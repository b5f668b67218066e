// Command webapp is the example's web app: the code foldup runs in a VM
// because we do not trust it. It shows the rows of one table of a
// PostgreSQL database, and learns which table from a DNS TXT record, so that
// the choice lives in foldup.yaml and not in the app.
//
// It is configured by its environment (in the example VM, /init turns each
// webapp.NAME=VALUE on the kernel command line into NAME=VALUE):
//
//	PGHOST        the database's name or address (default db)
//	PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE and the other libpq
//	              variables, as pgx reads them
//	TABLE_RECORD  the name whose TXT record names the table (default table;
//	              the resolver's search list completes it, so in a foldup
//	              project it is table.<project>.foldup.internal)
//	LISTEN        the address to serve on (default :80)
//
// It serves at once and keeps trying the database until it answers:
//
//	GET /         the table's rows: HTML for browsers, aligned text for
//	              curl (anything whose Accept header lacks text/html)
//	GET /healthz  200 "ok" when the database answers a ping, else 503
//
// The TXT record is looked up again for every page, so a changed record
// shows at the next request; when the lookup fails the last good answer
// is used.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		// The console (or foldup logs -t) stamps lines already.
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{}
			}
			return a
		},
	}))
	if err := run(log); err != nil {
		log.Error("exiting", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	if os.Getenv("PGHOST") == "" {
		os.Setenv("PGHOST", "db") // pgx reads the libpq variables itself
	}
	cfg, err := pgxpool.ParseConfig("")
	if err != nil {
		return fmt.Errorf("database settings: %w", err)
	}
	cfg.MaxConns = 4
	cfg.ConnConfig.ConnectTimeout = 3 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg) // connects lazily
	if err != nil {
		return fmt.Errorf("database settings: %w", err)
	}
	defer pool.Close()

	a := &app{
		log:    log,
		pool:   pool,
		record: envOr("TABLE_RECORD", "table"),
		lookup: net.DefaultResolver.LookupTXT,
	}
	addr := envOr("LISTEN", ":80")
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: a.routes(), ReadHeaderTimeout: 10 * time.Second}
	log.Info("listening", "addr", addr)
	go a.waitReady(ctx, cfg.ConnConfig.Host, cfg.ConnConfig.Port)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("stopping")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// app holds what the handlers share.
type app struct {
	log    *slog.Logger
	pool   *pgxpool.Pool
	record string
	lookup func(ctx context.Context, name string) ([]string, error)

	mu   sync.Mutex // guards last
	last string     // the last table name the TXT record gave
}

func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.page)
	mux.HandleFunc("GET /healthz", a.healthz)
	return mux
}

// waitReady logs the TXT record and then the database's answer as soon as
// each is there, so the console shows when the app is ready and why not.
func (a *app) waitReady(ctx context.Context, host string, port uint16) {
	for i := 0; ; i++ {
		t, err := a.table(ctx)
		if err == nil {
			a.log.Info("table from TXT record", "record", a.record, "table", t)
			break
		}
		if i%5 == 0 {
			a.log.Warn("no table yet", "err", err)
		}
		if !sleep(ctx, time.Second) {
			return
		}
	}
	for i := 0; ; i++ {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var version string
		err := a.pool.QueryRow(pctx, "SHOW server_version").Scan(&version)
		cancel()
		if err == nil {
			a.log.Info("database answered", "host", host, "port", port, "version", version)
			return
		}
		if i%5 == 0 {
			a.log.Warn("database not answering yet", "host", host, "port", port, "err", err)
		}
		if !sleep(ctx, 2*time.Second) {
			return
		}
	}
}

// table returns the table the TXT record names now, or the last one it
// named when it cannot be looked up.
func (a *app) table(ctx context.Context) (string, error) {
	lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	txts, err := a.lookup(lctx, a.record)
	if err == nil {
		var t string
		if t, err = tableFromTXT(a.record, txts); err == nil {
			a.mu.Lock()
			a.last = t
			a.mu.Unlock()
			return t, nil
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.last != "" {
		a.log.Warn("keeping the last table", "table", a.last, "err", err)
		return a.last, nil
	}
	return "", err
}

// tableFromTXT picks the table name out of the TXT record's strings: there
// must be exactly one, and a plain SQL identifier.
func tableFromTXT(record string, txts []string) (string, error) {
	if len(txts) != 1 {
		return "", fmt.Errorf("TXT %s: want one string, got %q", record, txts)
	}
	if !validIdent(txts[0]) {
		return "", fmt.Errorf("TXT %s: %q is not a table name (lower-case letters, digits and _, at most 63)", record, txts[0])
	}
	return txts[0], nil
}

func (a *app) page(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	t, err := a.table(ctx)
	if err != nil {
		a.fail(w, r, http.StatusServiceUnavailable, err)
		return
	}
	res, err := a.rows(ctx, t)
	if err != nil {
		a.fail(w, r, http.StatusServiceUnavailable, fmt.Errorf("table %s: %w", t, err))
		return
	}
	res.Source = "TXT " + a.record
	if wantsHTML(r) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		renderHTML(w, res)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	renderText(w, res)
}

func (a *app) fail(w http.ResponseWriter, r *http.Request, code int, err error) {
	a.log.Warn("page", "path", r.URL.Path, "err", err)
	http.Error(w, err.Error(), code)
}

// maxRows bounds a page.
const maxRows = 100

// rows reads up to maxRows rows of table t. The simple protocol returns
// every value in PostgreSQL's text form, as psql prints it, whatever its
// type.
func (a *app) rows(ctx context.Context, t string) (*result, error) {
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	q := fmt.Sprintf("SELECT * FROM %s ORDER BY 1 LIMIT %d", pgx.Identifier{t}.Sanitize(), maxRows)
	rows, err := a.pool.Query(qctx, q, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	res := &result{Table: t}
	for _, f := range rows.FieldDescriptions() {
		res.Columns = append(res.Columns, f.Name)
	}
	for rows.Next() {
		row := make([]string, len(res.Columns))
		for i, v := range rows.RawValues() {
			if v == nil {
				row[i] = "NULL"
			} else {
				row[i] = string(v)
			}
		}
		res.Rows = append(res.Rows, row)
	}
	return res, rows.Err()
}

func (a *app) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := a.pool.Ping(ctx); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("no answer in 2s: %w", err)
		}
		http.Error(w, "db: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
