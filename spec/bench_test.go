package spec

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

func services(n int) string {
	var b strings.Builder
	b.WriteString("name: big\nnetworks: {a: {}, b: {}}\nservices:\n")
	for i := range n {
		fmt.Fprintf(&b, "  s%d: {image: \"img:${TAG:-1}\", networks: [a, b], ports: [\"%d:80\"], environment: {K: v}", i, 10000+i)
		if i > 0 {
			fmt.Fprintf(&b, ", depends_on: [s%d]", i-1)
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// BenchmarkLoad500 is foldup's loader on 500 services; compare with
// BenchmarkComposeGo500, compose-go alone on the same bytes (what docker
// compose itself does), to see what foldup adds.
func BenchmarkLoad500(b *testing.B) {
	y := []byte(services(500))
	path := filepath.Join(b.TempDir(), "foldup.yaml")
	for b.Loop() {
		if _, err := LoadBytes(context.Background(), path, y, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkComposeGo500(b *testing.B) {
	y := []byte(services(500))
	dir := b.TempDir()
	for b.Loop() {
		_, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
			WorkingDir:  dir,
			ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, "compose.yaml"), Content: y}},
			Environment: types.Mapping{},
		}, func(o *loader.Options) { o.SetProjectName("big", true) })
		if err != nil {
			b.Fatal(err)
		}
	}
}
