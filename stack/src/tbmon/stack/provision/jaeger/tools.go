//go:build tools

// Package build pins Jaeger v2 for `make install`. Jaeger's module path has no /v2, and its v2
// releases up to v2.13.0 share commits with the v1.63-v1.76 tags; v1.76.0 is v2.13.0. The replace
// line in go.mod is copied from Jaeger's own go.mod (go install refuses modules that need one).
package build

import _ "github.com/jaegertracing/jaeger/cmd/jaeger"
