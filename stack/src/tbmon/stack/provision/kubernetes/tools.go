//go:build tools

// Package build pins the Kubernetes release the chart (tbmon/stack/kubernetes/tbmon) is checked
// against, for `make install`: kube-apiserver and the etcd it pins, built from Go modules, for
// the tests' server-side dry runs, and the release's OpenAPI document (api/openapi-spec in the
// k8s.io/kubernetes module), from which the tests write the JSON schemas kubeconform validates
// with. k8s.io/kubernetes is not meant to be required as a module: the replace lines point its
// staging modules at their published versions of the same release (v0.37.2 for v1.37.2).
package build

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
