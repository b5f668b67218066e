package spec

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/compose-spec/compose-go/v2/dotenv"
)

// compose v5 registers the env_file format "raw" itself (compose-go knows
// only ".env"): `docker run --env-file`'s, for files written for it.
func init() { dotenv.RegisterFormat("raw", parseRawEnv) }

// parseRawEnv reads an env file as `docker run --env-file` does: one
// KEY=VALUE a line, the value taken as it is (no quotes removed, nothing
// interpolated, trailing blanks kept); blank lines and lines starting with
// # skipped; a KEY alone takes the variable's value from the environment,
// and is left out when it has none. A key with blanks in it is an error.
func parseRawEnv(r io.Reader, filename string, vars map[string]string, lookup func(string) (string, bool)) error {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for n := 1; s.Scan(); n++ {
		line := s.Bytes()
		if n == 1 {
			line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
		}
		if !utf8.Valid(line) {
			return fmt.Errorf("%s:%d: invalid UTF-8", filename, n)
		}
		text := strings.TrimLeftFunc(string(line), unicode.IsSpace)
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		key, value, hasValue := strings.Cut(text, "=")
		if key == "" {
			return fmt.Errorf("%s:%d: no variable name before =", filename, n)
		}
		if strings.ContainsFunc(key, unicode.IsSpace) {
			return fmt.Errorf("%s:%d: variable %q contains blanks", filename, n, key)
		}
		if !hasValue {
			if v, ok := lookup(key); ok {
				vars[key] = v
			}
			continue
		}
		vars[key] = value
	}
	return s.Err()
}
