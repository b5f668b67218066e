package main

import (
	"html/template"
	"io"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"
)

// result is one table's rows, as the page shows them.
type result struct {
	Table   string
	Source  string // where the table name came from
	Columns []string
	Rows    [][]string
}

// validIdent reports whether s is a table name the app accepts: what
// PostgreSQL takes unquoted and folds to itself (lower-case ASCII letters,
// digits and underscores, not starting with a digit), at most 63 bytes
// (NAMEDATALEN-1). The name is still quoted in the query; this check
// keeps a record's contents from choosing anything but a plain table.
func validIdent(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c == '_':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// wantsHTML reports whether the client asked for HTML (browsers do; curl
// sends Accept: */*).
func wantsHTML(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

var pageHTML = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>{{.Table}}</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}th,td{border:1px solid #999;padding:.2em .6em;text-align:left}small{color:#666}</style>
</head><body>
<h1>{{.Table}}</h1>
<table>
<tr>{{range .Columns}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table>
<p><small>{{len .Rows}} rows; table chosen by {{.Source}}</small></p>
</body></html>
`))

// renderHTML writes res as an HTML page.
func renderHTML(w io.Writer, res *result) error {
	return pageHTML.Execute(w, res)
}

// renderText writes res as psql does: a title, aligned columns under a
// rule, and a row count.
//
//	users (table chosen by TXT table)
//
//	id | name | email
//	---+------+----------------
//	1  | Ada  | ada@example.com
//	(1 row)
func renderText(w io.Writer, res *result) error {
	width := make([]int, len(res.Columns))
	for i, c := range res.Columns {
		width[i] = utf8.RuneCountInString(c)
	}
	for _, row := range res.Rows {
		for i, v := range row {
			width[i] = max(width[i], utf8.RuneCountInString(printable(v)))
		}
	}
	var b strings.Builder
	b.WriteString(res.Table)
	if res.Source != "" {
		b.WriteString(" (table chosen by " + res.Source + ")")
	}
	b.WriteString("\n\n")
	line := func(cells []string) {
		for i, c := range cells {
			if i > 0 {
				b.WriteString(" | ")
			}
			c = printable(c)
			b.WriteString(c)
			if i < len(cells)-1 {
				b.WriteString(strings.Repeat(" ", width[i]-utf8.RuneCountInString(c)))
			}
		}
		b.WriteString("\n")
	}
	line(res.Columns)
	for i, n := range width {
		if i > 0 {
			b.WriteString("+")
		}
		pad := 2 // " x " around inner columns, one space at the ends
		if i == 0 || i == len(width)-1 {
			pad = 1
		}
		if len(width) == 1 {
			pad = 0
		}
		b.WriteString(strings.Repeat("-", n+pad))
	}
	b.WriteString("\n")
	for _, row := range res.Rows {
		line(row)
	}
	if len(res.Rows) == 1 {
		b.WriteString("(1 row)\n")
	} else {
		b.WriteString("(" + strconv.Itoa(len(res.Rows)) + " rows)\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// printable replaces control characters (a newline in a value would break
// the columns; an escape sequence would reach the reader's terminal).
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 {
			return '?'
		}
		return r
	}, s)
}
