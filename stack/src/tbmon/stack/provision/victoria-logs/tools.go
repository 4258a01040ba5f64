//go:build tools

// Package build pins VictoriaLogs, the local log store, for `make install`. The Go module proxy
// here serves only this pseudo-version of github.com/VictoriaMetrics/VictoriaLogs, and not the
// VictoriaMetrics pseudo-version it requires; go.mod raises that to the release v1.148.8, which
// builds and serves OTLP logs and LogsQL (tests/test_stack.py checks).
package build

import _ "github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs"
