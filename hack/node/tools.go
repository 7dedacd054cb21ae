//go:build tools

// Package tools records the commands this module builds, so `go mod tidy` keeps
// exactly what they need. It is never compiled.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
