# syntax=docker/dockerfile:1
# tbmon's Python services in one image: the health service, the alert bridge, the processors host
# and the demo bot. The Compose file picks the service by its command (`tbmon health serve`, ...).
# Build context: the repository root.
ARG PYTHON_IMAGE=python:3.11.14-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY constraints.txt ./
RUN python -m pip install -c constraints.txt pip hatchling
COPY . .
# One wheel per distribution (tbmon-stack's carries the configs, rules, dashboards and install.sh
# as package data), built as tests/test_install.py builds them.
RUN for folder in core instrumentation processors health alert_bridge otel-collector stack; do \
      python -m pip wheel --no-deps --no-build-isolation -w /wheels "./$folder" || exit 1; \
    done
# Installed, not editable: the image holds no checkout; pinned exactly as CI tests them.
RUN python -m venv /opt/tbmon \
 && /opt/tbmon/bin/pip install -c constraints.txt pip \
 && /opt/tbmon/bin/pip install -c constraints.txt --find-links /wheels tbmon-stack

FROM ${PYTHON_IMAGE}
# /var/lib/tbmon: the services' state (the bridge's outbox, the processors' high-water marks). /etc/alertmanager: where the Compose
# one-shot renders Alertmanager's config as Alertmanager's user (nobody), into a volume that takes
# this folder's owner when it is created; /etc/tbmon/rules and /etc/tbmon/dashboards, where the
# stack-config one-shot renders the rules and dashboards with the thresholds.
RUN groupadd --system --gid 10001 tbmon \
 && useradd --system --uid 10001 --gid tbmon --home-dir /var/lib/tbmon --shell /usr/sbin/nologin tbmon \
 && mkdir -p /var/lib/tbmon/bridge /var/lib/tbmon/processors /etc/alertmanager /etc/tbmon/rules /etc/tbmon/dashboards \
 && chown -R tbmon:tbmon /var/lib/tbmon /etc/tbmon \
 && chown 65534:65534 /etc/alertmanager
COPY --from=build /opt/tbmon /opt/tbmon
ENV PATH=/opt/tbmon/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /var/lib/tbmon
USER tbmon
ENTRYPOINT ["tbmon"]
CMD ["--help"]
