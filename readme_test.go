package gormaudit_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestREADMENamesRealTests keeps README.md honest: every test, fuzz target,
// benchmark and example it names as `TestX`, `FuzzX`, `BenchmarkX` or
// `ExampleX` is defined in some _test.go file of the module.
func TestREADMENamesRealTests(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	defined := map[string]bool{}
	decl := regexp.MustCompile(`(?m)^func ((?:Test|Fuzz|Benchmark|Example)\w+)\(`)
	err = filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range decl.FindAllSubmatch(src, -1) {
			defined[string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	named := regexp.MustCompile("`((?:Test|Fuzz|Benchmark|Example)[A-Z]\\w*)`")
	seen := 0
	for _, m := range named.FindAllSubmatch(readme, -1) {
		seen++
		if !defined[string(m[1])] {
			t.Errorf("README.md names %s, which no _test.go file defines", m[1])
		}
	}
	if seen < 20 {
		t.Fatalf("README.md names only %d tests: the pattern no longer matches how it names them", seen)
	}
}
