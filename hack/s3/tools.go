//go:build tools

// Package tools records the command this module builds (versitygw, an S3 server), so
// `go mod tidy` keeps exactly what it needs. It is never compiled.
package tools

import (
	_ "github.com/versity/versitygw/cmd/versitygw"
)
