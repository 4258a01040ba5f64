//go:build tools

// Package build pins kubeconform, which validates every object the chart renders against the
// JSON schemas of a pinned Kubernetes release, for `make install`.
package build

import _ "github.com/yannh/kubeconform/cmd/kubeconform"
