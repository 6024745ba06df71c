package auditsql_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"
)

// checkedPackages are the directories, from the module's root, whose
// non-test Go files may neither spell the audits table in SQL (only
// internal/auditsql does) nor decide the dialect (only internal/dialect
// does).
var checkedPackages = []string{"audit", "runbooks", "internal/pgfuse", "httpapi", "httpapi/client", "httpapi/webhook",
	"httpapi/apitype", "httpapi/internal/auditlist", "httpapi/internal/backoff"}

// auditsSQL matches SQL text naming the audits table or one of the columns
// only it has.
var auditsSQL = regexp.MustCompile(`\baudits\b|\b(auditable_type|auditable_id|associated_type|associated_id|` +
	`audited_changes|transaction_id|request_uuid|remote_address)\b`)

// sqlMarkers matches text that reads as SQL rather than prose: a keyword in
// capitals, a quoted identifier, a placeholder or a comparison.
var sqlMarkers = regexp.MustCompile(`\b(SELECT|INSERT|UPDATE|DELETE|FROM|WHERE|VALUES|RETURNING|JOIN)\b|"\w+"|[?=<>]`)

// queryMethods are the methods (gorm's, and the statement builder's
// WriteString) whose arguments are SQL or name the table a query runs on.
var queryMethods = map[string]bool{"Model": true, "Table": true, "Find": true, "First": true, "Take": true,
	"Last": true, "Scan": true, "Create": true, "Save": true, "Delete": true, "Raw": true, "Exec": true,
	"Where": true, "Or": true, "Not": true, "Select": true, "Pluck": true, "Order": true, "Distinct": true,
	"Group": true, "Having": true, "Joins": true, "Omit": true, "Update": true, "UpdateColumn": true,
	"WriteString": true}

// driverImports are the packages whose errors only internal/dialect reads.
var driverImports = map[string]bool{"github.com/jackc/pgx/v5/pgconn": true, "github.com/mattn/go-sqlite3": true}

// violations lists, as "file:line: what", the places of file that spell
// the audits table or decide the dialect.
func violations(fset *token.FileSet, file *ast.File) []string {
	var out []string
	report := func(n ast.Node, format string, args ...any) {
		p := fset.Position(n.Pos())
		out = append(out, fmt.Sprintf("%s:%d: %s", filepath.Base(p.Filename), p.Line, fmt.Sprintf(format, args...)))
	}
	for _, imp := range file.Imports {
		if path, _ := strconv.Unquote(imp.Path.Value); driverImports[path] {
			report(imp, "imports %s (only internal/dialect reads driver errors)", path)
		}
	}
	c := &checker{report: report, query: map[*ast.BasicLit]bool{}}
	ast.Inspect(file, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.Field:
			if n.Type != nil {
				ast.Inspect(n.Type, c.inspect)
			}
			return false // a struct tag is the row's Go form, not SQL
		case *ast.ImportSpec:
			return false
		}
		return c.inspect(n)
	})
	return out
}

// checker checks the nodes of one file outside struct tags and imports.
type checker struct {
	report func(ast.Node, string, ...any)
	// query holds the string literals found in the arguments of
	// queryMethods: SQL, even when it does not look like it ("auditable_id").
	query map[*ast.BasicLit]bool
}

func (c *checker) inspect(n ast.Node) bool {
	report := c.report
	switch n := n.(type) {
	case *ast.BasicLit:
		s, err := strconv.Unquote(n.Value)
		if err == nil && n.Kind == token.STRING && auditsSQL.MatchString(s) && (c.query[n] || sqlMarkers.MatchString(s)) {
			report(n, "SQL naming the audits table or its columns: %q", auditsSQL.FindString(s))
		}
	case *ast.SelectorExpr:
		if n.Sel.Name == "Name" {
			if x, ok := n.X.(*ast.SelectorExpr); ok && x.Sel.Name == "Dialector" {
				report(n, "Dialector.Name() decides the dialect (use internal/dialect)")
			}
		}
	case *ast.CallExpr:
		if sel, ok := n.Fun.(*ast.SelectorExpr); ok && queryMethods[sel.Sel.Name] {
			for _, arg := range n.Args {
				if namesAuditsTable(arg) {
					report(n, "%s on the audits table (use internal/auditsql)", sel.Sel.Name)
				}
				ast.Inspect(arg, func(m ast.Node) bool {
					if lit, ok := m.(*ast.BasicLit); ok {
						c.query[lit] = true
					}
					return true
				})
			}
		}
	}
	return true
}

// namesAuditsTable reports whether expr is TableName, an Audit value or a
// pointer to one, or a slice of them, of the audit package.
func namesAuditsTable(expr ast.Expr) bool {
	if u, ok := expr.(*ast.UnaryExpr); ok && u.Op == token.AND {
		expr = u.X
	}
	if c, ok := expr.(*ast.CompositeLit); ok {
		expr = c.Type
	}
	if a, ok := expr.(*ast.ArrayType); ok {
		expr = a.Elt
	}
	name := ""
	switch e := expr.(type) {
	case *ast.Ident:
		name = e.Name
	case *ast.SelectorExpr:
		if x, ok := e.X.(*ast.Ident); ok && x.Name == "audit" {
			name = e.Sel.Name
		}
	}
	return name == "Audit" || name == "TableName"
}

// packageViolations parses the non-test Go files of dir.
func packageViolations(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no Go files in %s", dir)
	fset := token.NewFileSet()
	var out []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		require.NoError(t, err)
		for _, v := range violations(fset, file) {
			out = append(out, filepath.Base(dir)+"/"+v)
		}
	}
	return out
}

// TestOnlyAuditSQLSpellsTheAuditsTableAndOnlyDialectDecides enforces, for
// checkedPackages, that SQL naming the audits table or its columns appears
// only in internal/auditsql, that the dialect is decided only in
// internal/dialect, and that only internal/dialect reads driver errors.
func TestOnlyAuditSQLSpellsTheAuditsTableAndOnlyDialectDecides(t *testing.T) {
	t.Parallel()
	var all []string
	for _, pkg := range checkedPackages {
		all = append(all, packageViolations(t, filepath.Join("..", "..", filepath.FromSlash(pkg)))...)
	}
	require.Empty(t, all, "move these to internal/auditsql or internal/dialect:\n%s", strings.Join(all, "\n"))
}

// TestTheOwnershipCheckFindsViolations runs the check on a file that breaks
// every rule, so that a check that finds nothing cannot pass unnoticed.
func TestTheOwnershipCheckFindsViolations(t *testing.T) {
	t.Parallel()
	got := packageViolations(t, filepath.Join("testdata", "violations"))
	want := []string{
		`violations/violations.go:5: imports github.com/jackc/pgx/v5/pgconn (only internal/dialect reads driver errors)`,
		`violations/violations.go:16: Dialector.Name() decides the dialect (use internal/dialect)`,
		`violations/violations.go:19: SQL naming the audits table or its columns: "audits"`,
		`violations/violations.go:20: SQL naming the audits table or its columns: "auditable_type"`,
		`violations/violations.go:21: Model on the audits table (use internal/auditsql)`,
		`violations/violations.go:22: Table on the audits table (use internal/auditsql)`,
		`violations/violations.go:23: Find on the audits table (use internal/auditsql)`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("violations (-want +got):\n%s", diff)
	}
}
