//go:build tools

// Package build pins the OpenTelemetry Operator for `make install`: its manager (the webhooks that
// instrument a pod annotated for an Instrumentation) runs against the tests' kube-apiserver, and
// its CRDs (config/crd/bases in the module) are what the chart's Instrumentation is validated
// against (tests/kubernetes_support.py). v0.144.0 is the newest release our Go module proxy
// serves.
package build

import _ "github.com/open-telemetry/opentelemetry-operator"
