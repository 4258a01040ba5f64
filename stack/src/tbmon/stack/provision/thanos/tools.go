//go:build tools

// Package build pins Thanos for the scaled topology's metrics store (`make install`): two
// `thanos receive` nodes (a hashring with replication factor 2) behind Prometheus's remote write,
// and `thanos query` over them, which answers PromQL with Prometheus's own engine. The replace
// lines in go.mod are copied from Thanos's own go.mod (go install refuses modules that need one).
package build

import _ "github.com/thanos-io/thanos/cmd/thanos"
