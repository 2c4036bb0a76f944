//go:build tools

// Package tools records the command scripts/e2e-tools.sh builds, so that
// `go mod tidy` keeps its dependencies in go.sum.
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
