# syntax=docker/dockerfile:1
# tbmon's Python services in one image: the health service, the alert bridge, the processors host
# and the demo bot. The Compose file picks the service by its command (`tbmon health serve`, ...).
# Build context: the repository root.
ARG PYTHON_IMAGE=python:3.11.14-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/tbmon
WORKDIR /app
# Dependencies first (their layer is reused while only tbmon's code changes), pinned exactly as
# CI tests them.
COPY pyproject.toml constraints.txt README.md ./
RUN /opt/tbmon/bin/pip install -c constraints.txt pip setuptools wheel \
 && /opt/tbmon/bin/python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml','rb'))['project']['dependencies']))" > requirements.txt \
 && /opt/tbmon/bin/pip install -c constraints.txt -r requirements.txt
COPY . .
# Editable: tbmon finds stack/ and otel-collector/ next to its code (tbmon.settings.PROJECT_ROOT).
RUN /opt/tbmon/bin/pip install -c constraints.txt --no-deps -e .

FROM ${PYTHON_IMAGE}
# /var/lib/tbmon: the services' state (the bridge's outbox). /etc/alertmanager: where the Compose
# one-shot renders Alertmanager's config as Alertmanager's user (nobody), into a volume that takes
# this folder's owner when it is created; /etc/tbmon/rules and /etc/tbmon/dashboards, where the
# stack-config one-shot renders the rules and dashboards with the thresholds.
RUN groupadd --system --gid 10001 tbmon \
 && useradd --system --uid 10001 --gid tbmon --home-dir /var/lib/tbmon --shell /usr/sbin/nologin tbmon \
 && mkdir -p /var/lib/tbmon/bridge /etc/alertmanager /etc/tbmon/rules /etc/tbmon/dashboards \
 && chown -R tbmon:tbmon /var/lib/tbmon /etc/tbmon \
 && chown 65534:65534 /etc/alertmanager
COPY --from=build /opt/tbmon /opt/tbmon
COPY --from=build /app /app
ENV PATH=/opt/tbmon/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /var/lib/tbmon
USER tbmon
ENTRYPOINT ["tbmon"]
CMD ["--help"]
