//go:build tools

// Package tools records the command this module builds (helm), so `go mod tidy` keeps
// exactly what it needs. It is never compiled.
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
