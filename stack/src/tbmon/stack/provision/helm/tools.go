//go:build tools

// Package build pins Helm 4, which renders and lints the Kubernetes chart (tbmon/stack/kubernetes/tbmon),
// for `make install`.
package build

import _ "helm.sh/helm/v4/cmd/helm"
