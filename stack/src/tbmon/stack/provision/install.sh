#!/usr/bin/env bash
# Everything tbmon's stack runs, on a fresh Debian bookworm machine, as root. Idempotent: a second
# run checks each step's stamp and takes seconds. Two ways to run it, one script:
#
#   install.sh --checkout DIR   `make install` in a git checkout: step 2 builds DIR/.venv with
#                               every tbmon distribution installed editable (tests, editors)
#   install.sh                  `tbmon stack install`, from the installed tbmon-stack wheel (this
#                               file is its package data): no virtual environment is made, the
#                               Python that runs tbmon is the one given in TBMON_PYTHON
#
#   1. Debian packages: Prometheus (+promtool), Alertmanager (+amtool), node exporter, PostgreSQL
#   2. (checkout only) the Python virtual environment (.venv), pinned by constraints.txt
#   3. the OpenTelemetry Collector, built by the Collector Builder from tbmon.collector's
#      builder-config.yaml (found through tbmon.stack.resources, as the stack finds it)
#   4. Jaeger v2 and 5. VictoriaLogs, built from Go modules pinned beside this script
#   6-11. the Kubernetes chart's checkers (stack/src/tbmon/stack/kubernetes, docs/kubernetes.md): Helm 4,
#      kubeconform, promtool of the chart's Prometheus, etcd and kube-apiserver of the pinned
#      Kubernetes release, and the OpenTelemetry Operator, likewise
#   12. Thanos (the scaled topology's metrics store, docs/scaling.md), likewise
#
# Go builds land in $TBMON_CACHE_DIR (default ~/.cache/tbmon)/<name>/<sha256 of the pinning file>/,
# outside the checkout, and Go's own module and build caches stay in their default places, so a
# fresh clone on the same machine reuses them. Each step logs to $TBMON_CACHE_DIR/logs/<step>.log.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)  # the Go pins: $HERE/<name>/go.mod
CHECKOUT=
while [ $# -gt 0 ]; do
  case $1 in
    --checkout) CHECKOUT=$(cd "${2:?--checkout needs a folder}" && pwd); shift 2 ;;
    *) echo "usage: install.sh [--checkout DIR]" >&2; exit 2 ;;
  esac
done
# What the user runs again after fixing a failed step.
if [ -n "$CHECKOUT" ]; then AGAIN="make install"; else AGAIN="tbmon stack install"; fi
CACHE=${TBMON_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tbmon}
LOGS=$CACHE/logs
PYTHON=${PYTHON:-python3}
DEBIAN_PACKAGES=(prometheus prometheus-alertmanager prometheus-node-exporter postgresql)
STEPS=12
mkdir -p "$LOGS"

bold=$'\e[1m'; red=$'\e[31m'; green=$'\e[32m'; dim=$'\e[2m'; reset=$'\e[0m'
[ -t 1 ] || { bold=; red=; green=; dim=; reset=; }

# run STEP_NUMBER NAME HINT COMMAND...: runs COMMAND with its output in $LOGS/NAME.log, printing
# progress every 15 s; on failure prints the log's tail and HINT, then exits.
run() {
  local number=$1 name=$2 hint=$3; shift 3
  local log=$LOGS/$name.log started=$SECONDS
  printf '%s==> [%s/%s] %s%s\n' "$bold" "$number" "$STEPS" "$name" "$reset"
  "$@" >"$log" 2>&1 &
  local pid=$! next=15
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if (( SECONDS - started >= next )); then
      printf '%s    ... %s still running (%ds; log: %s)%s\n' "$dim" "$name" $((SECONDS - started)) "$log" "$reset"
      next=$((next + 15))
    fi
  done
  if ! wait "$pid"; then
    printf '%s==> step %s/%s "%s" failed after %ds. Last lines of %s:%s\n' "$red" "$number" "$STEPS" "$name" $((SECONDS - started)) "$log" "$reset" >&2
    tail -n 25 "$log" | sed 's/^/    | /' >&2
    printf '%sWhat to do: %s%s\n' "$bold" "$hint" "$reset" >&2
    exit 1
  fi
  printf '%s    done in %ds%s\n' "$green" $((SECONDS - started)) "$reset"
}

skip() { printf '%s==> [%s/%s] %s: %s%s\n' "$bold" "$1" "$STEPS" "$2" "$3" "$reset"; }

key_of() { sha256sum "$1" | cut -c1-16; }

# --- 1. Debian packages -----------------------------------------------------------------------
missing_packages() {
  local p
  for p in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}

install_debian() {
  # No init system runs services here: keep the packages' postinst from starting daemons that
  # would take the stack's ports (a policy-rc.d that denies, unless the machine has one already).
  local policy=/usr/sbin/policy-rc.d created= status=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created=1
  fi
  { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"; } || status=$?
  if [ -n "$created" ]; then rm -f "$policy"; fi
  return "$status"
}

mapfile -t missing < <(missing_packages)
if [ ${#missing[@]} -eq 0 ]; then
  skip 1 "Debian packages" "already installed (${DEBIAN_PACKAGES[*]})"
elif [ "$(id -u)" -ne 0 ]; then
  echo "${red}Debian packages missing: ${missing[*]}. Run $AGAIN as root, or: sudo apt-get install ${missing[*]}${reset}" >&2
  exit 1
else
  run 1 "debian-packages" "check that apt can reach Debian's mirrors (apt-get update), then run $AGAIN again" \
    install_debian "${missing[@]}"
fi

# --- 2. Python environment (checkout only) -----------------------------------------------------
if [ -n "$CHECKOUT" ]; then
  VENV=$CHECKOUT/.venv
  python_stamp=$(cat "$CHECKOUT"/pyproject.toml "$CHECKOUT"/*/pyproject.toml "$CHECKOUT/constraints.txt" | sha256sum | cut -c1-16)
  install_python() {
    "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "tbmon needs Python 3.11 or newer"'
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q -c "$CHECKOUT/constraints.txt" pip setuptools wheel
    # Every distribution editable, so imports resolve to the files in the checkout.
    "$VENV/bin/python" -m pip install --disable-pip-version-check -c "$CHECKOUT/constraints.txt" \
      -e "$CHECKOUT/core" -e "$CHECKOUT/instrumentation" -e "$CHECKOUT/processors" \
      -e "$CHECKOUT/health" -e "$CHECKOUT/alert_bridge" -e "$CHECKOUT/otel-collector" \
      -e "$CHECKOUT/stack" -e "$CHECKOUT[dev]"
    echo "$python_stamp" >"$VENV/.tbmon-stamp"
  }
  if [ "$(cat "$VENV/.tbmon-stamp" 2>/dev/null)" = "$python_stamp" ]; then
    skip 2 "Python environment" "up to date ($VENV)"
  else
    run 2 "python-environment" "check that pip can reach PyPI and that $PYTHON is Python 3.11+, then run $AGAIN again" install_python
  fi
  TBMON_PYTHON=$VENV/bin/python
else
  skip 2 "Python environment" "tbmon is installed already (${TBMON_PYTHON:?TBMON_PYTHON: the Python that runs tbmon; tbmon stack install sets it})"
fi
# The stack's files, where the installed (or editable) tbmon-stack finds them.
resource() { "$TBMON_PYTHON" -c "from tbmon.stack import resources; print(resources.$1)"; }

# --- 3-12. Go builds ---------------------------------------------------------------------------
export GOFLAGS=${GOFLAGS:-} GOTOOLCHAIN=${GOTOOLCHAIN:-local}
command -v go >/dev/null || { echo "${red}Go is not installed: install Go 1.24 or newer (https://go.dev/doc/install), then run $AGAIN again${reset}" >&2; exit 1; }

MANIFEST=$(resource COLLECTOR_MANIFEST)
OCB_VERSION=v$(sed -n 's/^  version: *//p' "$MANIFEST")
build_collector() {
  local out=$1 builder=$CACHE/tools/builder-$OCB_VERSION/builder work
  if [ ! -x "$builder" ]; then
    GOBIN=$(dirname "$builder") go install "go.opentelemetry.io/collector/cmd/builder@$OCB_VERSION"
  fi
  work=$(mktemp -d "$CACHE/otelcol-build.XXXXXX")
  sed "s#^  output_path: .*#  output_path: $work#" "$MANIFEST" >"$work.yaml"
  "$builder" --config="$work.yaml"
  mkdir -p "$(dirname "$out")"
  mv "$work/otelcol-tbmon" "$out"
  rm -rf "$work" "$work.yaml"
}

# build_go_module OUT FOLDER PACKAGE [GO BUILD FLAGS...]: builds PACKAGE with the go.mod/go.sum
# pinned in FOLDER.
build_go_module() {
  local out=$1 folder=$2 package=$3
  shift 3
  mkdir -p "$(dirname "$out")"
  # A partial file of this run's own: a checkout's make install and an installed tbmon stack
  # install may build the same binary at once; the last rename wins, with the same bytes.
  local partial=$out.partial.$$
  (cd "$folder" && go build -trimpath "$@" -o "$partial" "$package")
  mv "$partial" "$out"
}

# go_build_step NUMBER LABEL NAME PIN_FILE BUILD_FUNCTION ARGS...: BUILD_FUNCTION OUT ARGS...
# unless the binary for this PIN_FILE's hash is cached.
go_build_step() {
  local number=$1 label=$2 name=$3 pin=$4 build=$5; shift 5
  local out
  out=$CACHE/$name/$(key_of "$pin")/$name
  if [ -x "$out" ]; then
    skip "$number" "$label" "cached ($out)"
  else
    run "$number" "$name" "read the log above; check that the Go module proxy is reachable (go env GOPROXY), then run $AGAIN again" \
      "$build" "$out" "$@"
  fi
}

go_build_step 3 "OpenTelemetry Collector" otelcol-tbmon "$MANIFEST" build_collector
go_build_step 4 "Jaeger v2" jaeger "$HERE/jaeger/go.mod" \
  build_go_module "$HERE/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger
go_build_step 5 "VictoriaLogs" victoria-logs "$HERE/victoria-logs/go.mod" \
  build_go_module "$HERE/victoria-logs" github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs
go_build_step 6 "Helm" helm "$HERE/helm/go.mod" \
  build_go_module "$HERE/helm" helm.sh/helm/v4/cmd/helm
go_build_step 7 "kubeconform" kubeconform "$HERE/kubeconform/go.mod" \
  build_go_module "$HERE/kubeconform" github.com/yannh/kubeconform/cmd/kubeconform
go_build_step 8 "promtool (Prometheus v3)" promtool "$HERE/prometheus/go.mod" \
  build_go_module "$HERE/prometheus" github.com/prometheus/prometheus/cmd/promtool
go_build_step 9 "etcd" etcd "$HERE/kubernetes/go.mod" \
  build_go_module "$HERE/kubernetes" go.etcd.io/etcd/server/v3
# Stamped with its release, as Kubernetes' own build does (clients such as Helm check it).
KUBERNETES_VERSION=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2}' "$HERE/kubernetes/go.mod")
: "${KUBERNETES_VERSION:?$HERE/kubernetes/go.mod requires no k8s.io/kubernetes}"
KUBERNETES_MINOR=$(echo "$KUBERNETES_VERSION" | cut -d. -f2)
go_build_step 10 "kube-apiserver" kube-apiserver "$HERE/kubernetes/go.mod" \
  build_go_module "$HERE/kubernetes" k8s.io/kubernetes/cmd/kube-apiserver \
  -ldflags "-X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$KUBERNETES_MINOR"
go_build_step 11 "OpenTelemetry Operator" otel-operator "$HERE/otel-operator/go.mod" \
  build_go_module "$HERE/otel-operator" github.com/open-telemetry/opentelemetry-operator
# Built with the tags of Thanos's own release build (.promu.yml): its receiver needs slicelabels.
go_build_step 12 "Thanos" thanos "$HERE/thanos/go.mod" \
  build_go_module "$HERE/thanos" github.com/thanos-io/thanos/cmd/thanos -tags slicelabels,netgo

if [ -n "$CHECKOUT" ]; then
  echo "${green}${bold}tbmon is installed.${reset} Start the stack with: .venv/bin/tbmon stack up   (or: make demo)"
else
  echo "${green}${bold}tbmon's backends are installed.${reset} Start the stack with: tbmon stack up"
fi
