package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestValidIdent(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{"users", true},
		{"products", true},
		{"_t", true},
		{"order_items2", true},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false},
		{"", false},
		{"2users", false},
		{"Users", false}, // would need quoting to mean "Users"
		{"users;drop table users", false},
		{"public.users", false},
		{`users"`, false},
		{"users ", false},
		{"üsers", false},
		{"pg_catalog", true}, // a plain name; the web role's grants decide what it may read
	} {
		if got := validIdent(tc.s); got != tc.want {
			t.Errorf("validIdent(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
}

func TestTableFromTXT(t *testing.T) {
	for _, tc := range []struct {
		txts    []string
		want    string
		wantErr string
	}{
		{[]string{"users"}, "users", ""},
		{nil, "", `TXT table: want one string, got []`},
		{[]string{"users", "products"}, "", `TXT table: want one string, got ["users" "products"]`},
		{[]string{"Users; --"}, "", `TXT table: "Users; --" is not a table name (lower-case letters, digits and _, at most 63)`},
	} {
		got, err := tableFromTXT("table", tc.txts)
		if got != tc.want || errString(err) != tc.wantErr {
			t.Errorf("tableFromTXT(%q) = %q, %v; want %q, %s", tc.txts, got, err, tc.want, tc.wantErr)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestTableKeepsLastGood(t *testing.T) {
	answers := []struct {
		txts []string
		err  error
	}{
		{nil, errors.New("no such host")},
		{[]string{"users"}, nil},
		{nil, errors.New("timeout")},
		{[]string{"x;y"}, nil},
		{[]string{"products"}, nil},
	}
	i := 0
	a := &app{log: slog.New(slog.DiscardHandler), record: "table", lookup: func(ctx context.Context, name string) ([]string, error) {
		r := answers[i]
		i++
		return r.txts, r.err
	}}
	want := []struct{ table, err string }{
		{"", "no such host"},
		{"users", ""},
		{"users", ""}, // lookup failed: the last good answer
		{"users", ""}, // bad name: the last good answer
		{"products", ""},
	}
	for n, w := range want {
		got, err := a.table(t.Context())
		if got != w.table || errString(err) != w.err {
			t.Errorf("call %d: table() = %q, %v; want %q, %q", n, got, err, w.table, w.err)
		}
	}
}

var sample = &result{
	Table:   "users",
	Source:  "TXT table",
	Columns: []string{"id", "name", "email"},
	Rows: [][]string{
		{"1", "Ada Lovelace", "ada@example.com"},
		{"2", "Grace <Hopper>", "NULL"},
		{"10", "Line\nbreak", "ésa@example.com"},
	},
}

func TestRenderText(t *testing.T) {
	var b strings.Builder
	if err := renderText(&b, sample); err != nil {
		t.Fatal(err)
	}
	want := `users (table chosen by TXT table)

id | name           | email
---+----------------+----------------
1  | Ada Lovelace   | ada@example.com
2  | Grace <Hopper> | NULL
10 | Line?break     | ésa@example.com
(3 rows)
`
	if b.String() != want {
		t.Errorf("renderText:\n%s\nwant:\n%s", b.String(), want)
	}

	b.Reset()
	renderText(&b, &result{Table: "one", Columns: []string{"n"}, Rows: [][]string{{"42"}}})
	if want := "one\n\nn\n--\n42\n(1 row)\n"; b.String() != want {
		t.Errorf("renderText, one column:\n%q\nwant:\n%q", b.String(), want)
	}
}

func TestRenderHTML(t *testing.T) {
	var b strings.Builder
	if err := renderHTML(&b, sample); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	for _, s := range []string{
		"<title>users</title>",
		"<tr><th>id</th><th>name</th><th>email</th></tr>",
		"<tr><td>2</td><td>Grace &lt;Hopper&gt;</td><td>NULL</td></tr>",
		"3 rows; table chosen by TXT table",
	} {
		if !strings.Contains(got, s) {
			t.Errorf("renderHTML lacks %q:\n%s", s, got)
		}
	}
}

func TestWantsHTML(t *testing.T) {
	for accept, want := range map[string]bool{
		"":    false,
		"*/*": false, // curl
		"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8": true, // a browser
		"text/plain": false,
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if accept != "" {
			r.Header.Set("Accept", accept)
		}
		if got := wantsHTML(r); got != want {
			t.Errorf("wantsHTML(Accept: %q) = %v, want %v", accept, got, want)
		}
	}
}

// TestPageWithoutTable: with no TXT record and no database the page says
// why, with 503, and does not touch the database.
func TestPageWithoutTable(t *testing.T) {
	a := &app{log: slog.New(slog.DiscardHandler), record: "table", lookup: func(ctx context.Context, name string) ([]string, error) {
		return nil, errors.New("lookup table: no such host")
	}}
	w := httptest.NewRecorder()
	a.routes().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	if w.Code != http.StatusServiceUnavailable || w.Body.String() != "lookup table: no such host\n" {
		t.Errorf("GET / = %d %q", w.Code, w.Body.String())
	}
	w = httptest.NewRecorder()
	a.routes().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/other", nil))
	if w.Code != http.StatusNotFound {
		t.Errorf("GET /other = %d, want 404", w.Code)
	}
}
