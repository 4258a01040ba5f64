#!/bin/sh
# Installs tbmon's bot side into TARGET, laid out as the OpenTelemetry Operator's Python
# auto-instrumentation image contract wants it: the packages at the top of TARGET, with
# opentelemetry-instrumentation's sitecustomize in TARGET/opentelemetry/instrumentation/
# auto_instrumentation/, so that the operator's PYTHONPATH (that folder, then TARGET) starts a bot
# as `opentelemetry-instrument python bot.py` does. One script for the image (Dockerfile beside
# it) and for the test that runs a bot this way (tests/test_kubernetes.py).
#
#   build.sh TARGET          (PYTHON: the interpreter whose version the bots run; default python3)
set -eu
target=${1:?usage: build.sh TARGET}
here=$(cd "$(dirname "$0")" && pwd)
# The checkout: this folder is stack/src/tbmon/stack/kubernetes/autoinstrumentation in it.
root=$(cd "$here/../../../../../.." && pwd)
python=${PYTHON:-python3}
pip() { "$python" -m pip install --disable-pip-version-check --no-cache-dir --no-warn-script-location --target "$target" -c "$root/constraints.txt" "$@"; }
pip -r "$here/requirements.txt"
# The bot side only: tbmon-core and tbmon-instrumentation, never the stack's distributions.
pip --no-deps "$root/core" "$root/instrumentation"
# The operator's init container copies TARGET with `cp -r` as the bot's user.
chmod -R go+rX "$target"
