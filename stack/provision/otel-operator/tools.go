//go:build tools

// Package build pins the OpenTelemetry Operator whose CRDs (config/crd/bases in its module: the
// Instrumentation the chart renders) the chart's objects are validated against, offline
// (tests/kubernetes_support.py). v0.144.0 is the newest release our Go module proxy serves.
package build

import _ "github.com/open-telemetry/opentelemetry-operator"
