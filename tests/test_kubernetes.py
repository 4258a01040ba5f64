"""The Kubernetes chart (tbmon/stack/kubernetes/tbmon), checked without a cluster's nodes.

- ``helm lint`` and ``helm template`` (Helm 4) with the default values and the main variations;
- every rendered object against the JSON schemas of the pinned Kubernetes release and the
  OpenTelemetry Operator's CRDs (kubeconform, strict), and admitted by a real kube-apiserver on
  etcd in a server-side dry run (strict field validation);
- the chart's configs come from the local stack's sources: the rules and dashboards are those
  files, the collector tiers' configs are derived from tbmon/collector/config.yaml and validated
  by the collector binary, Jaeger's roles by Jaeger, Prometheus's config by promtool, and
  Alertmanager's by amtool after the pod's own render step;
- the objects are wired together (Services select pods with the named ports, volumes exist,
  autoscalers and budgets find their workloads), secrets come only from the Kubernetes Secret,
  and every pod meets the "restricted" Pod Security Standard;
- a bot started as the operator starts an annotated pod (its PYTHONPATH, the Instrumentation's
  variables, tbmon's auto-instrumentation folder built by the image's own script) reaches every
  backend of the real stack, as under ``opentelemetry-instrument``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from checktools import module_dir
from kubernetes_support import (
    AUTOINSTRUMENTATION,
    CHART,
    NAMESPACE,
    OPERATOR_PIN,
    PROMTOOL,
    ApiServer,
    api_server,
    by_kind,
    dry_run_apply,
    helm,
    kubeconform,
    kubelet_environment,
    operator,
    render,
    schemas,
    tool,
)
from support import CHECKOUT, Backends, wait_until

from tbmon.settings import StackSettings
from tbmon.stack import binaries
from tbmon.stack.components import COLLECTOR_FEATURE_GATES
from tbmon.stack.resources import COLLECTOR_CONFIG, STACK_DATA
from tbmon.standins.exchange import running

#: The main variations of the values, beside the defaults.
VARIATIONS: dict[str, dict[str, Any]] = {
    "defaults": {},
    # DNS resolution of the tiers, fixed replica counts, three-node stores, a private registry,
    # the Telegram stand-in, OTLP/HTTP for the bots, email alerts, a hostPath agent queue.
    "dns-fixed-three": {
        "collector": {"resolver": "dns"},
        "agent": {"queueHostPath": "/var/lib/tbmon/agent-queue"},
        "gateway": {"autoscaling": {"enabled": False}, "replicas": 3},
        "processors": {"autoscaling": {"enabled": False}, "replicas": 3},
        "metricsStore": {"replicas": 3, "replicationFactor": 3},
        "logs": {"storage": {"replicas": 3}, "insert": {"autoscaling": {"enabled": False}}},
        "traces": {"collector": {"autoscaling": {"enabled": False}}},
        "alertmanager": {
            "replicas": 3,
            "email": {"host": "smtp.example.org:587", "from": "tbmon@example.org"},
        },
        "images": {"registry": "registry.example.org/tbmon/"},
        "telegramTest": {"enabled": True},
        "instrumentation": {"protocol": "http/protobuf", "env": {"TBMON_ENVIRONMENT": "prod"}},
        "grafana": {"rootUrl": "https://grafana.example.org"},
    },
    # The pipeline and backends alone: no Grafana, health service or Instrumentation.
    "minimal": {
        "grafana": {"enabled": False},
        "health": {"enabled": False},
        "instrumentation": {"enabled": False},
    },
}
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")
#: The keys of the Secret (values.yaml, secrets.name): the only place secrets come from.
SECRET_KEYS = {
    "ALERT_BRIDGE_TOKEN",
    "GRAFANA_ADMIN_PASSWORD",
    "TELEGRAM_BOT_TOKEN",
    "HEALTH_TOKEN",
    "DATABASE_URL",
    "SMTP_PASSWORD",
}
SECRET_NAME = re.compile(r"TOKEN|PASSWORD|SECRET|DATABASE_URL")


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {name: render(values) for name, values in VARIATIONS.items()}


def pods(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each workload's pod template, by workload name."""
    return {o["metadata"]["name"]: o["spec"]["template"] for o in objects if o["kind"] in WORKLOADS}


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def config_map_data(objects: list[dict[str, Any]], name: str) -> dict[str, str]:
    data: dict[str, str] = by_kind(objects, "ConfigMap")[name]["data"]
    return data


# -- Helm ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("variation", sorted(VARIATIONS))
def test_helm_lint_passes_strict(variation: str, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(VARIATIONS[variation]))
    linted = helm("lint", "--strict", str(CHART), "-f", str(values), check=False)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert "0 chart(s) failed" in linted.stdout


def test_default_values_render_the_whole_topology(rendered: dict[str, Any]) -> None:
    objects = rendered["defaults"]
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert ("DaemonSet", "agent") in kinds
    for name in ("gateway", "traces-collector", "logs-insert"):
        assert {("Deployment", name), ("HorizontalPodAutoscaler", name)} <= kinds
        assert ("PodDisruptionBudget", name) in kinds
    assert {("StatefulSet", "processors"), ("HorizontalPodAutoscaler", "processors")} <= kinds
    assert ("PodDisruptionBudget", "processors") in kinds
    for name in ("prometheus", "metrics-store", "alertmanager", "logs-storage"):
        assert ("StatefulSet", name) in kinds
        assert ("PodDisruptionBudget", name) in kinds
    assert ("Instrumentation", "tbmon") in kinds
    statefulsets = by_kind(objects, "StatefulSet")
    assert statefulsets["prometheus"]["spec"]["replicas"] == 2
    assert statefulsets["alertmanager"]["spec"]["replicas"] == 2
    assert statefulsets["logs-storage"]["spec"]["replicas"] == 2
    assert statefulsets["alert-bridge"]["spec"]["replicas"] == 1  # its outbox deduplicates


@pytest.mark.parametrize("variation", sorted(VARIATIONS))
def test_each_processors_host_keeps_its_marks_on_a_claim_of_its_own(
    variation: str, rendered: dict[str, Any]
) -> None:
    """The trading-analytics processor's high-water marks outlive the pod: a restarted or
    upgraded host reads a bot's peak back, so its drawdown does not fall to zero."""
    host = by_kind(rendered[variation], "StatefulSet")["processors"]["spec"]
    (container,) = host["template"]["spec"]["containers"]
    state = _env(container)["PROCESSORS_ANALYTICS_STATE_DIR"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    claims = {c["metadata"]["name"]: c["spec"] for c in host["volumeClaimTemplates"]}
    assert claims[mounts[state]]["accessModes"] == ["ReadWriteOnce"]
    assert claims[mounts[state]]["resources"]["requests"]["storage"] == "1Gi"


def test_invalid_choices_are_refused_with_their_name() -> None:
    with pytest.raises(subprocess.CalledProcessError) as failed:
        render({"collector": {"resolver": "static"}})
    assert "collector.resolver must be k8s or dns" in failed.value.stderr


# -- schemas and a real API server -------------------------------------------------------------


@pytest.mark.parametrize("variation", sorted(VARIATIONS))
def test_every_object_validates_against_the_pinned_release(
    variation: str, rendered: dict[str, Any]
) -> None:
    results = kubeconform(rendered[variation])
    assert len(results) == len(rendered[variation])
    problems = [r for r in results if r["status"] != "statusValid"]
    assert problems == []
    kinds = {r["kind"] for r in results}
    if variation == "defaults":
        assert {"HorizontalPodAutoscaler", "PodDisruptionBudget", "Instrumentation"} <= kinds


def test_the_schemas_refuse_what_the_api_server_refuses(rendered: dict[str, Any]) -> None:
    objects = rendered["defaults"]
    deployment = json.loads(json.dumps(by_kind(objects, "Deployment")["gateway"]))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy "] = "Always"
    hpa = json.loads(json.dumps(by_kind(objects, "HorizontalPodAutoscaler")["gateway"]))
    hpa["spec"]["maxReplicas"] = "eight"
    instrumentation = json.loads(json.dumps(by_kind(objects, "Instrumentation")["tbmon"]))
    instrumentation["spec"]["python"]["imagee"] = "x"
    pdb = json.loads(json.dumps(by_kind(objects, "PodDisruptionBudget")["gateway"]))
    pdb["spec"]["maxUnavailable"] = 1.5
    unknown = {"apiVersion": "apps/v1", "kind": "Deploymnet", "metadata": {"name": "x"}}
    results = kubeconform([deployment, hpa, instrumentation, pdb, unknown])
    # kubeconform answers in its own order (several workers).
    assert {r["kind"]: r["status"] for r in results} == {
        "Deployment": "statusInvalid",
        "HorizontalPodAutoscaler": "statusInvalid",
        "Instrumentation": "statusInvalid",
        "PodDisruptionBudget": "statusInvalid",
        "Deploymnet": "statusError",  # no schema for it
    }
    assert (schemas() / "instrumentation-opentelemetry-v1alpha1.json").is_file()


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiServer, httpx.Client]]:
    """A real API server with the release's namespace (Pod Security "restricted") and the
    operator's CRDs."""
    with api_server(tmp_path_factory.mktemp("kube-apiserver")) as api, api.client() as client:
        # Pod Security admission at "restricted": the API server warns about any workload whose
        # pods it would refuse.
        level = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn")}
        namespace = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": NAMESPACE, "labels": level},
        }
        client.post("/api/v1/namespaces", json=namespace).raise_for_status()
        operator = module_dir(OPERATOR_PIN, "github.com/open-telemetry/opentelemetry-operator")
        for crd in sorted((operator / "config/crd/bases").glob("*.yaml")):
            created = client.post(
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                json=yaml.safe_load(crd.read_text()),
            )
            created.raise_for_status()
        crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"

        def established() -> bool:
            listed = client.get(crds).raise_for_status().json()["items"]
            return bool(listed) and all(
                any(
                    c["type"] == "Established" and c["status"] == "True"
                    for c in (crd.get("status") or {}).get("conditions") or []
                )
                for crd in listed
            )

        wait_until(established, "the operator's CRDs to be established", timeout=120)

        def served() -> bool:
            versions = ("v1alpha1", "v1beta1")
            return all(
                client.get(f"/apis/opentelemetry.io/{v}").status_code == 200 for v in versions
            )

        wait_until(served, "opentelemetry.io's versions to be served", timeout=120)
        yield api, client


@pytest.fixture(scope="module")
def kube_api(kube: tuple[ApiServer, httpx.Client]) -> httpx.Client:
    return kube[1]


@pytest.mark.parametrize("variation", sorted(VARIATIONS))
def test_a_real_api_server_admits_every_object(
    variation: str, rendered: dict[str, Any], kube_api: httpx.Client
) -> None:
    refused, warnings = dry_run_apply(kube_api, rendered[variation], NAMESPACE)
    assert refused == {}
    if variation == "dns-fixed-three":  # its agent queue on a hostPath
        assert set(warnings) == {"DaemonSet/agent"}
        assert "hostPath" in " ".join(warnings["DaemonSet/agent"])
    else:
        assert warnings == {}


def test_helm_installs_and_uninstalls_the_chart_on_a_real_api_server(
    kube: tuple[ApiServer, httpx.Client], tmp_path: Path
) -> None:
    api, client = kube
    kubeconfig = str(api.kubeconfig(tmp_path / "kubeconfig"))
    namespace = "tbmon-helm"
    common = ["--kubeconfig", kubeconfig, "--namespace", namespace]
    installed = helm("install", "tbmon", str(CHART), *common, "--create-namespace", check=False)
    assert installed.returncode == 0, installed.stderr[-3000:]
    assert "STATUS: deployed" in installed.stdout
    # Stored by the API server as rendered: the agents' DaemonSet, the operator's CRD object.
    daemonset = client.get(f"/apis/apps/v1/namespaces/{namespace}/daemonsets/agent")
    assert daemonset.raise_for_status().json()["spec"]["template"]["spec"]["containers"]
    path = f"/apis/opentelemetry.io/v1alpha1/namespaces/{namespace}/instrumentations/tbmon"
    assert client.get(path).status_code == 200
    uninstalled = helm("uninstall", "tbmon", *common, check=False)
    assert uninstalled.returncode == 0, uninstalled.stderr[-3000:]
    assert client.get(path).status_code == 404


def test_the_api_server_dry_run_refuses_a_bad_object(
    rendered: dict[str, Any], kube_api: httpx.Client
) -> None:
    pdb = json.loads(json.dumps(by_kind(rendered["defaults"], "PodDisruptionBudget")["gateway"]))
    pdb["spec"]["minAvailable"] = 1  # with maxUnavailable: the API server refuses both at once
    instrumentation = json.loads(
        json.dumps(by_kind(rendered["defaults"], "Instrumentation")["tbmon"])
    )
    instrumentation["spec"]["python"]["imagee"] = "x"
    refused, _ = dry_run_apply(kube_api, [pdb, instrumentation], NAMESPACE)
    assert set(refused) == {"PodDisruptionBudget/gateway", "Instrumentation/tbmon"}
    assert "imagee" in refused["Instrumentation/tbmon"]


# -- the same sources as the local stack ---------------------------------------------------------

SOURCES = {
    "files/otel-collector/config.yaml": COLLECTOR_CONFIG,
    "files/prometheus/prometheus.yml": STACK_DATA / "prometheus/prometheus.yml",
    "files/prometheus/rules": STACK_DATA / "prometheus/rules",
    "files/grafana/dashboards": STACK_DATA / "grafana/dashboards",
    "files/grafana/datasources.yaml": STACK_DATA
    / "grafana/provisioning/datasources/datasources.yaml",
    "files/grafana/dashboards.yaml": STACK_DATA / "grafana/provisioning/dashboards/dashboards.yaml",
    "files/jaeger/config.yaml": STACK_DATA / "jaeger/config.yaml",
}


def test_the_chart_files_are_links_to_the_stack_sources() -> None:
    files = {
        str(path.relative_to(CHART))
        for path in (CHART / "files").rglob("*")
        if path.is_symlink() or path.is_file()
    }
    assert {f for f in files if not any(f.startswith(s) for s in SOURCES)} == set()
    for link, source in SOURCES.items():
        assert (CHART / link).is_symlink(), link
        assert (CHART / link).resolve() == source.resolve()


def test_rules_and_dashboards_are_packaged_byte_for_byte(
    rendered: dict[str, Any], tmp_path: Path
) -> None:
    objects = rendered["defaults"]
    rules = config_map_data(objects, "prometheus-rules")
    sources = sorted((STACK_DATA / "prometheus/rules").glob("*.yml"))
    assert rules == {path.name: path.read_text() for path in sources}
    dashboards = config_map_data(objects, "grafana-dashboards")
    expected = sorted((STACK_DATA / "grafana/dashboards").glob("*.json"))
    assert dashboards == {path.name: path.read_text() for path in expected}
    # A packaged chart carries the files themselves, not the links.
    helm("package", str(CHART), "--destination", str(tmp_path))
    (archive,) = tmp_path.glob("tbmon-*.tgz")
    with tarfile.open(archive) as tar:
        packaged = tar.extractfile("tbmon/files/prometheus/rules/trading.yml")
        assert packaged is not None
        assert packaged.read() == (STACK_DATA / "prometheus/rules/trading.yml").read_bytes()


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def assert_validates(program: Path, config: Path, env: dict[str, str], *flags: str) -> None:
    """A collector distribution (the tbmon collector, Jaeger) accepts ``config`` in ``env``."""
    checked = subprocess.run(
        [str(program), "validate", "--config", f"file:{config}", *flags],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize("variation", ["defaults", "dns-fixed-three"])
def test_collector_tiers_are_derived_from_the_local_config(
    variation: str, rendered: dict[str, Any], tmp_path: Path
) -> None:
    objects = rendered[variation]
    source = yaml.safe_load((COLLECTOR_CONFIG).read_text())
    feed = "otlp_grpc/processors"
    assert feed in source["exporters"]
    workloads = pods(objects)
    services = by_kind(objects, "Service")
    collector = binaries.OTELCOL.path(StackSettings().cache_dir)
    for role, next_tier, port in (("agent", "gateway", 4317), ("gateway", "processors", 4319)):
        config = yaml.safe_load(config_map_data(objects, f"{role}-config")["config.yaml"])
        pipelines = config["service"]["pipelines"]
        fed = {n for n, p in source["service"]["pipelines"].items() if feed in p["exporters"]}
        assert set(pipelines) == (fed if role == "agent" else set(source["service"]["pipelines"]))
        for name in fed:
            signal = name.split("/")[0]
            exporter = config["exporters"][f"load_balancing/{signal}"]
            assert pipelines[name]["exporters"] == [f"load_balancing/{signal}"]
            assert exporter["routing_key"] == {"traces": "traceID"}.get(
                signal, exporter["routing_key"]
            )
            # The persistent queue and retries of the single-node exporter, before the routing.
            expected = source["exporters"][feed]["sending_queue"]
            queue = dict(exporter["sending_queue"])
            if "batch" not in expected:  # batching moved in from a batch processor
                queue.pop("batch", None)
            assert queue == expected
            assert exporter["retry_on_failure"] == source["exporters"][feed]["retry_on_failure"]
            assert exporter["protocol"]["otlp"]["tls"] == source["exporters"][feed]["tls"]
            resolver = exporter["resolver"]
            if "k8s" in resolver:
                service, namespace = resolver["k8s"]["service"].split(".")
                ports = resolver["k8s"]["ports"]
            else:
                service, namespace = resolver["dns"]["hostname"].split(".")[:2]
                ports = [int(resolver["dns"]["port"])]
                assert services[service]["spec"]["clusterIP"] == "None"
            assert namespace == NAMESPACE
            assert ports == [port]
            assert port in {p["port"] for p in services[service]["spec"]["ports"]}
            assert services[service]["spec"]["selector"]["app.kubernetes.io/component"] == next_tier
        # What stays the single-node config's: the processors (limits...) it keeps; batching
        # moves from batch processors into the persistent queues.
        for name, processor in config["processors"].items():
            assert processor == source["processors"][name]
            assert name.split("/")[0] != "batch"
        for name, pipeline in pipelines.items():
            (batch, *_) = [
                *(p for p in source["service"]["pipelines"][name]["processors"] if "batch" in p),
                None,
            ]
            for exporter in pipeline["exporters"]:
                queue = config["exporters"][exporter].get("sending_queue")
                if batch and queue:
                    assert (
                        queue["batch"]["min_size"] == source["processors"][batch]["send_batch_size"]
                    )
        # The real collector accepts it, in the pod's environment.
        (container,) = workloads[role]["spec"]["containers"]
        env = {**_env(container), "TBMON_COLLECTOR_STORAGE_DIR": str(tmp_path / role)}
        path = tmp_path / f"{role}.yaml"
        path.write_text(yaml.safe_dump(config))
        assert_validates(collector, path, env, *container["args"][2:])


def test_collectors_run_with_the_single_node_collectors_flags(rendered: dict[str, Any]) -> None:
    for role in ("agent", "gateway"):
        (container,) = pods(rendered["defaults"])[role]["spec"]["containers"]
        args = container["args"]
        assert args[:2] == ["--config", "file:/etc/otelcol/config.yaml"]
        assert args[2:] == [f"--feature-gates={COLLECTOR_FEATURE_GATES}"]


def test_jaeger_roles_validate_with_jaeger(rendered: dict[str, Any], tmp_path: Path) -> None:
    objects = rendered["defaults"]
    jaeger = binaries.JAEGER.path(StackSettings().cache_dir)
    workloads = pods(objects)
    for role in ("store", "collector", "query"):
        config = config_map_data(objects, f"traces-{role}-config")["config.yaml"]
        document = yaml.safe_load(config)
        extensions = set(document["service"]["extensions"])
        assert ("remote_storage" in extensions) == (role == "store")
        assert ("jaeger_query" in extensions) == (role == "query")
        path = tmp_path / f"{role}.yaml"
        path.write_text(config)
        (container,) = workloads[f"traces-{role}"]["spec"]["containers"]
        env = {**_env(container), "TBMON_JAEGER_BADGER_DIR": str(tmp_path / "badger")}
        assert_validates(jaeger, path, env)


@pytest.mark.parametrize("variation", ["defaults", "dns-fixed-three"])
def test_prometheus_pair_scrapes_every_component_and_alerts_both_alertmanagers(
    variation: str, rendered: dict[str, Any], tmp_path: Path
) -> None:
    objects = rendered[variation]
    config_text = config_map_data(objects, "prometheus-config")["prometheus.yml"]
    path = tmp_path / "prometheus.yml"
    path.write_text(config_text)
    checked = subprocess.run(
        [str(tool(PROMTOOL)), "check", "config", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # The rules as the chart mounts them, by the promtool of the Prometheus it runs.
    rules = []
    for name, text in config_map_data(objects, "prometheus-rules").items():
        rules.append(tmp_path / name)
        rules[-1].write_text(text)
    checked = subprocess.run(
        [str(tool(PROMTOOL)), "check", "rules", *map(str, rules)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = yaml.safe_load(config_text)
    source = yaml.safe_load((STACK_DATA / "prometheus/prometheus.yml").read_text())
    kept = {job["job_name"] for job in config["scrape_configs"]}
    assert kept == {j["job_name"] for j in source["scrape_configs"]} - {"node-exporter", "cadvisor"}
    workloads = pods(objects)
    component_ports = {
        (pod["metadata"]["labels"]["app.kubernetes.io/component"], port["name"])
        for pod in workloads.values()
        for container in pod["spec"]["containers"]
        for port in container.get("ports", [])
    }
    for job in config["scrape_configs"]:
        keep = {
            r["source_labels"][0]: r["regex"]
            for r in job["relabel_configs"]
            if r["action"] == "keep"
        }
        components = keep["__meta_kubernetes_pod_label_app_kubernetes_io_component"].split("|")
        (port,) = keep["__meta_kubernetes_pod_container_port_name"].split("|")
        for component in components:
            assert (component, port) in component_ports, (job["job_name"], component, port)
    assert config["global"]["external_labels"]["replica"] == "${POD_NAME}"
    replicas = by_kind(objects, "StatefulSet")["alertmanager"]["spec"]["replicas"]
    (targets,) = config["alerting"]["alertmanagers"][0]["static_configs"]
    assert targets["targets"] == [
        f"alertmanager-{n}.alertmanager-headless.{NAMESPACE}.svc.cluster.local:9093"
        for n in range(replicas)
    ]
    assert config["alerting"]["alert_relabel_configs"] == [
        {"action": "labeldrop", "regex": "replica"}
    ]


def test_alertmanager_config_renders_in_its_pod_and_passes_amtool(
    rendered: dict[str, Any], tmp_path: Path
) -> None:
    pod = pods(rendered["dns-fixed-three"])["alertmanager"]
    (render_step,) = pod["spec"]["initContainers"]
    env = _env(render_step) | {"ALERT_BRIDGE_TOKEN": "a-test-token", "SMTP_PASSWORD": "pw"}
    out = tmp_path / "alertmanager.yml"
    arguments = [
        a if a != "/etc/alertmanager/alertmanager.yml" else str(out) for a in render_step["args"]
    ]
    subprocess.run(
        [sys.executable, "-m", "tbmon", *arguments],
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), **env},
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    checked = subprocess.run(
        [str(binaries.AMTOOL.path(StackSettings().cache_dir)), "check-config", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = yaml.safe_load(out.read_text())
    assert {r["name"] for r in config["receivers"]} == {"telegram", "email"}
    webhook = config["receivers"][0]["webhook_configs"][0]
    assert webhook["url"].startswith("http://alert-bridge:8090/")
    assert "alert-bridge" in by_kind(rendered["dns-fixed-three"], "Service")
    assert (out.parent / "alert-bridge-token").read_text() == "a-test-token"


# -- wiring, secrets and pod security -----------------------------------------------------------


@pytest.mark.parametrize("variation", sorted(VARIATIONS))
def test_objects_are_wired_together(variation: str, rendered: dict[str, Any]) -> None:
    objects = rendered[variation]
    workloads = pods(objects)
    labels = {name: pod["metadata"]["labels"] for name, pod in workloads.items()}
    config_maps = set(by_kind(objects, "ConfigMap"))
    claims = set(by_kind(objects, "PersistentVolumeClaim"))
    services = by_kind(objects, "Service")
    accounts = set(by_kind(objects, "ServiceAccount"))

    def selected(selector: dict[str, str]) -> list[str]:
        return [n for n, pod_labels in labels.items() if selector.items() <= pod_labels.items()]

    for name, service in services.items():
        (workload,) = selected(service["spec"]["selector"])
        ports = {
            p["name"] for c in workloads[workload]["spec"]["containers"] for p in c.get("ports", [])
        }
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports, name
    for obj in objects:
        if obj["kind"] in WORKLOADS:
            spec = obj["spec"]
            assert (
                spec["selector"]["matchLabels"].items()
                <= spec["template"]["metadata"]["labels"].items()
            )
            if obj["kind"] == "StatefulSet":
                assert spec["serviceName"] in services, obj["metadata"]["name"]
            pod = spec["template"]["spec"]
            assert pod.get("serviceAccountName", "default") in accounts | {"default"}
            pod_labels = spec["template"]["metadata"]["labels"].items()
            for spread in pod.get("topologySpreadConstraints", []):
                assert spread["labelSelector"]["matchLabels"].items() <= pod_labels
            templates = {c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])}
            volumes = {v["name"] for v in pod.get("volumes", [])} | templates
            for volume in pod.get("volumes", []):
                if "configMap" in volume:
                    assert volume["configMap"]["name"] in config_maps
                if "persistentVolumeClaim" in volume:
                    assert volume["persistentVolumeClaim"]["claimName"] in claims
            for container in containers(spec["template"]):
                assert {m["name"] for m in container.get("volumeMounts", [])} <= volumes
        if obj["kind"] == "HorizontalPodAutoscaler":
            target = obj["spec"]["scaleTargetRef"]
            assert target["name"] in by_kind(objects, target["kind"])
            assert "replicas" not in by_kind(objects, target["kind"])[target["name"]]["spec"]
        if obj["kind"] == "PodDisruptionBudget":
            assert selected(obj["spec"]["selector"]["matchLabels"]), obj["metadata"]["name"]
    # Every in-cluster address a pod is given names a rendered Service.
    address = re.compile(rf"([a-z0-9-]+)(?:-\d+\.([a-z0-9-]+))?\.{NAMESPACE}\.svc\.cluster\.local")
    text = yaml.safe_dump_all(objects)
    for match in address.finditer(text):
        assert (match.group(2) or match.group(1)) in services, match.group(0)
    short = re.compile(r"http://([a-z0-9-]+):\d+")
    for pod in workloads.values():
        for container in containers(pod):
            for value in _env(container).values():
                for host in short.findall(value):
                    assert host in services or host == "localhost", (value, host)


@pytest.mark.parametrize("variation", sorted(VARIATIONS))
def test_secrets_come_only_from_the_kubernetes_secret(
    variation: str, rendered: dict[str, Any]
) -> None:
    objects = rendered[variation]
    assert by_kind(objects, "Secret") == {}
    referenced = set()
    for pod in pods(objects).values():
        for container in containers(pod):
            for env in container.get("env", []):
                reference = env.get("valueFrom", {}).get("secretKeyRef")
                if reference:
                    assert reference["name"] == "tbmon-secrets"
                    referenced.add(reference["key"])
                elif SECRET_NAME.search(env["name"]):
                    raise AssertionError(f"{env['name']} is not from the Secret")
    assert referenced <= SECRET_KEYS
    assert "ALERT_BRIDGE_TOKEN" in referenced
    # No secret has a default, nor anywhere to put one in the values.
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    flat = json.dumps(values)
    for key in SECRET_KEYS:
        assert key not in flat.replace('"name": "tbmon-secrets"', "")


def test_grafana_and_the_bridge_need_their_secret() -> None:
    objects = render()
    workloads = pods(objects)
    grafana = {e["name"]: e for e in workloads["grafana"]["spec"]["containers"][0]["env"]}
    password = grafana["GF_SECURITY_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert password == {"name": "tbmon-secrets", "key": "GRAFANA_ADMIN_PASSWORD", "optional": False}
    bridge = {e["name"]: e for e in workloads["alert-bridge"]["spec"]["containers"][0]["env"]}
    telegram = bridge["TELEGRAM_BOT_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert telegram["optional"] is False  # without the stand-in, a token is required
    assert by_kind(render({"telegramTest": {"enabled": True}}), "Deployment")["telegram-test"]


@pytest.mark.parametrize("variation", ["defaults", "minimal"])
def test_every_pod_meets_the_restricted_pod_security_standard(
    variation: str, rendered: dict[str, Any]
) -> None:
    for name, pod in pods(rendered[variation]).items():
        spec = pod["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert not spec.get("hostNetwork"), name
        assert not spec.get("hostPID"), name
        assert all("hostPath" not in v for v in spec.get("volumes", [])), name
        for container in containers(pod):
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"] == {"drop": ["ALL"]}, name
            assert security["readOnlyRootFilesystem"] is True, name
            assert "resources" in container or container["name"] in {
                "render-config",
                "telegram-test",
            }, name


# -- a bot instrumented by annotation ------------------------------------------------------------


def _operator_python_sources() -> dict[str, str]:
    """Where the pinned operator's init container copies a Python image's folders from, by
    platform (internal/instrumentation/python.go)."""
    operator = module_dir(OPERATOR_PIN, "github.com/open-telemetry/opentelemetry-operator")
    source = (operator / "internal/instrumentation/python.go").read_text()
    found = re.findall(r'(glibc|musl)LinuxAutoInstrumentationSrc\s*=\s*"([^"]+)"', source)
    return {platform: path.removesuffix("/.") for platform, path in found}


def _cached_build(name: str, inputs: list[Path], build: Any) -> Path:
    digest = hashlib.sha256()
    for path in inputs:
        digest.update(path.read_bytes())
    folder = StackSettings().cache_dir / "checktools" / name / digest.hexdigest()[:16]
    if not (folder / ".done").is_file():
        shutil.rmtree(folder, ignore_errors=True)  # what a failed build left
        folder.mkdir(parents=True)
        build(folder)
        (folder / ".done").write_text("")
    return folder


def test_the_image_builds_its_folder_with_the_same_script() -> None:
    dockerfile = (AUTOINSTRUMENTATION / "Dockerfile").read_text()
    sources = _operator_python_sources()
    assert sources == {"glibc": "/autoinstrumentation", "musl": "/autoinstrumentation-musl"}
    for folder in sources.values():
        assert f"build.sh {folder}\n" in dockerfile
    assert re.search(r"^FROM busybox", dockerfile, re.M)  # `cp` for the operator's init container


@pytest.mark.stack
def test_a_bot_pod_instrumented_by_the_operator_reaches_every_backend(
    backends: Backends, kube: tuple[ApiServer, httpx.Client], tmp_path: Path
) -> None:
    image = (
        _cached_build(
            "autoinstrumentation-python",
            [
                AUTOINSTRUMENTATION / "build.sh",
                AUTOINSTRUMENTATION / "requirements.txt",
                CHECKOUT / "constraints.txt",
                CHECKOUT / "core" / "pyproject.toml",
                CHECKOUT / "instrumentation" / "pyproject.toml",
                *sorted((CHECKOUT / "core").rglob("*.py")),
                *sorted((CHECKOUT / "instrumentation").rglob("*.py")),
            ],
            lambda folder: subprocess.run(
                [str(AUTOINSTRUMENTATION / "build.sh"), str(folder / "autoinstrumentation")],
                env={**os.environ, "PYTHON": sys.executable},
                check=True,
                capture_output=True,
            ),
        )
        / "autoinstrumentation"
    )
    # The bot's own image: an interpreter with no tbmon and no OpenTelemetry, and ccxt.
    ccxt_pin = next(
        line
        for line in (CHECKOUT / "constraints.txt").read_text().splitlines()
        if line.startswith("ccxt==")
    )
    bot_env = tmp_path / "bot-python"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bot_env)], check=True)
    deps = (
        _cached_build(
            "bot-ccxt",
            [CHECKOUT / "constraints.txt"],
            lambda folder: subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "--target",
                    str(folder / "site"),
                    ccxt_pin,
                ],
                check=True,
                capture_output=True,
            ),
        )
        / "site"
    )
    # The operator instruments the bot's pod: the chart's Instrumentation is created through its
    # webhooks, and a pod annotated for it is created (dry run) through its pod webhook.
    api, client = kube
    instrumentation = by_kind(render(), "Instrumentation")["tbmon"]
    name = f"bot-{uuid.uuid4().hex[:6]}"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "bots",
            "annotations": {"instrumentation.opentelemetry.io/inject-python": f"{NAMESPACE}/tbmon"},
        },
        "spec": {
            "containers": [{"name": "bot", "image": "bot:1", "command": ["python", "bot.py"]}]
        },
    }
    with operator(api, client, tmp_path / "operator"):
        client.post(
            f"/apis/opentelemetry.io/v1alpha1/namespaces/{NAMESPACE}/instrumentations",
            json=instrumentation,
        ).raise_for_status()
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bots"}}
        client.post("/api/v1/namespaces", json=namespace).raise_for_status()
        account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}
        client.post("/api/v1/namespaces/bots/serviceaccounts", json=account).raise_for_status()

        def mutated() -> dict[str, Any] | None:
            created = client.post(
                "/api/v1/namespaces/bots/pods", params={"dryRun": "All"}, json=pod
            ).raise_for_status()
            result: dict[str, Any] = created.json()
            return result if result["spec"].get("initContainers") else None

        # The webhook reads the Instrumentation from its cache, which follows the API server.
        injected = wait_until(mutated, "the operator's webhook to instrument the pod", 60)
    (init,) = injected["spec"]["initContainers"]
    assert init["image"] == instrumentation["spec"]["python"]["image"]
    source, mount = init["command"][-2:]  # cp -r /autoinstrumentation/. <mount>
    assert init["command"][:2] == ["cp", "-r"]
    assert source == "/autoinstrumentation/."  # where the Dockerfile puts build.sh's folder
    (container,) = injected["spec"]["containers"]
    env = kubelet_environment(container, injected)
    # Here the mount is the folder build.sh made, and the node's agent the stack's collector.
    env["PYTHONPATH"] = env["PYTHONPATH"].replace(mount, str(image))
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == (
        f"http://agent.{NAMESPACE}.svc.cluster.local:4317"
    )
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://{backends.otlp_grpc}"
    service = env["OTEL_SERVICE_NAME"]
    assert service == name
    # The bot's own image: ccxt on its own PYTHONPATH (the operator keeps it, between its own).
    env["PYTHONPATH"] = env["PYTHONPATH"].replace(
        f"{image}/opentelemetry/instrumentation/auto_instrumentation:",
        f"{image}/opentelemetry/instrumentation/auto_instrumentation:{deps}:",
    )
    env["PATH"] = os.environ["PATH"]
    bot = (
        "import logging, os, sys\n"
        "from urllib.parse import urlsplit\n"
        "import ccxt\n"
        # tbmon, if loaded, comes from the injected folder (the bot's Python has none).
        "tbmon = sys.modules.get('tbmon')\n"
        # (a namespace package: no __file__, its portions in __path__)
        "assert tbmon is None or all(p.startswith(sys.argv[1]) for p in tbmon.__path__), tbmon\n"
        "log = logging.getLogger('bot')\n"
        "exchange = ccxt.binance({'options': {'fetchMarkets': {'types': ['spot']},"
        " 'fetchCurrencies': False, 'fetchMargins': False}})\n"
        "base = os.environ['EXCHANGE_API_URL'].rstrip('/')\n"
        "urls = exchange.urls['api']\n"
        "exchange.urls['api'] = {k: base + urlsplit(v).path for k, v in urls.items()}\n"
        "for _ in range(5):\n"
        "    log.warning('BTC/USDT last %s', exchange.fetch_ticker('BTC/USDT')['last'])\n"
    )
    with running() as exchange_url:
        done = subprocess.run(
            [str(bot_env / "bin" / "python"), "-c", bot, str(image)],
            env={**env, "EXCHANGE_API_URL": exchange_url},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "trace_id=" in done.stderr  # tbmon's distro set the console format

    def spans() -> list[dict[str, Any]] | None:
        response = httpx.get(
            backends.settings.url(backends.settings.jaeger_query_port, "/api/traces"),
            params={"service": service, "limit": 20},
            timeout=10,
        )
        data = response.json()["data"]
        return data if len(data) >= 5 else None

    traces = wait_until(spans, f"{service}'s ccxt spans in Jaeger", timeout=120)
    processes = traces[0]["processes"]
    tags = {t["key"]: t["value"] for p in processes.values() for t in p["tags"]}
    assert tags["k8s.pod.name"] == name
    assert tags["k8s.namespace.name"] == "bots"
    # tbmon's configurator added its resource attributes beside the operator's.
    assert "tbmon.strategy" in tags
    # The operator sets service.namespace to the pod's namespace: the Prometheus job (the
    # collector's namespace/name) is bots/<pod>.
    assert "service.namespace=bots" in env["OTEL_RESOURCE_ATTRIBUTES"]
    job = f"bots/{service}"
    wait_until(
        lambda: backends.prometheus(f'api_request_duration_seconds_count{{job="{job}"}}'),
        f"{service}'s ccxt latency in Prometheus",
        timeout=120,
    )
    wait_until(
        lambda: backends.logs(f'"BTC/USDT last" AND service.name:="{service}"'),
        f"{service}'s log lines in the log store",
        timeout=120,
    )
