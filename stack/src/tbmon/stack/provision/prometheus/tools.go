//go:build tools

// Package build pins promtool of the Prometheus release the chart's image runs (v3.14.0 is module
// v0.314.0), for `make install`: the chart's Prometheus config uses Kubernetes service discovery,
// which Debian's promtool (2.42, built without it) cannot check.
package build

import _ "github.com/prometheus/prometheus/cmd/promtool"
