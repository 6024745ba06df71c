package client

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestClientImportsNoDatabaseCode lists every package the client depends on
// with the go tool and fails on any of gorm or pgx: a program that only
// reads the endpoint must not link database code.
func TestClientImportsNoDatabaseCode(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	require.NoError(t, err, "go list -deps")
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "github.com/gormaudit/gormaudit/httpapi/client", "go list ran on this package")
	var bad []string
	for _, p := range deps {
		if strings.HasPrefix(p, "gorm.io/") || strings.HasPrefix(p, "github.com/jackc/") ||
			p == "github.com/gormaudit/gormaudit/audit" {
			bad = append(bad, p)
		}
	}
	require.Empty(t, bad, "the client depends on database code")
}
