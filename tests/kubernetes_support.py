"""The Kubernetes chart's checkers: Helm, kubeconform, JSON schemas of a pinned Kubernetes, and a
real API server (kube-apiserver on etcd) for server-side dry runs.

- Helm 4, kubeconform, kube-apiserver and etcd are Go builds that ``make install`` caches under
  ``<cache_dir>/<name>/<hash of the pin file>/`` (tbmon/stack/provision/helm,
  kubeconform, kubernetes).
- The JSON schemas are produced here, offline, from what the Go module proxy serves: the pinned
  Kubernetes release's OpenAPI document (``api/openapi-spec/swagger.json`` of the
  ``k8s.io/kubernetes`` module that tbmon/stack/provision/kubernetes/go.mod pins) and the
  OpenTelemetry Operator's CRDs (``config/crd/bases`` of the operator module that
  tbmon/stack/provision/otel-operator/go.mod pins). They are written the way kubeconform looks
  them up
  (``<kind>-<group>-<version>.json``), strict: an object's unknown field is an error, as the API
  server's strict field validation makes it. Cached under ``<cache_dir>/checktools/k8s-schemas/``.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import yaml
from checktools import module_dir

from tbmon.settings import StackSettings
from tbmon.stack.binaries import Binary
from tbmon.stack.resources import STACK_DATA

CHART = STACK_DATA / "kubernetes" / "tbmon"
AUTOINSTRUMENTATION = STACK_DATA / "kubernetes" / "autoinstrumentation"
PROVISION = STACK_DATA / "provision"
KUBERNETES_PIN = PROVISION / "kubernetes"
OPERATOR_PIN = PROVISION / "otel-operator"

HELM = Binary("helm", manifest=STACK_DATA / "provision/helm/go.mod")
KUBECONFORM = Binary("kubeconform", manifest=STACK_DATA / "provision/kubeconform/go.mod")
#: promtool of the Prometheus the chart runs (Debian's is built without Kubernetes discovery).
PROMTOOL = Binary("promtool", manifest=STACK_DATA / "provision/prometheus/go.mod")
KUBE_APISERVER = Binary("kube-apiserver", manifest=STACK_DATA / "provision/kubernetes/go.mod")
ETCD = Binary("etcd", manifest=STACK_DATA / "provision/kubernetes/go.mod")
#: The OpenTelemetry Operator (its manager: the webhooks that instrument pods).
OPERATOR = Binary("otel-operator", manifest=STACK_DATA / "provision/otel-operator/go.mod")

NAMESPACE = "tbmon"
SCHEMA_FILE = "{{ .ResourceKind }}{{ .KindSuffix }}.json"
DEFINITIONS = "_definitions.json"


def tool(binary: Binary) -> Path:
    return binary.path(StackSettings().cache_dir)


# -- rendering ---------------------------------------------------------------------------------


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Helm 4 on the chart folder (its symbolic links to stack/ are followed and announced on
    stderr, which the callers ignore)."""
    return subprocess.run(
        [str(tool(HELM)), *args],
        capture_output=True,
        text=True,
        check=check,
        env={**os.environ, "HELM_CACHE_HOME": tempfile.gettempdir() + "/tbmon-helm-cache"},
    )


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """``helm template`` of the chart with ``values`` over the defaults: the rendered objects."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as file:
        yaml.safe_dump(values or {}, file)
        file.flush()
        done = helm("template", "tbmon", str(CHART), "--namespace", NAMESPACE, "-f", file.name)
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


# -- JSON schemas from the pinned release -------------------------------------------------------


def _kind_file(group: str, version: str, kind: str) -> str:
    """kubeconform's file name for a kind: ``{{ .ResourceKind }}{{ .KindSuffix }}.json``."""
    suffix = f"-{group.split('.', maxsplit=1)[0]}-{version}" if group else f"-{version}"
    return f"{kind.lower()}{suffix}.json"


_REF = "#/definitions/"


def _strict(node: Any, *, where: str) -> Any:
    """A schema node made strict and JSON-schema-valid for what Kubernetes accepts:

    - an object with properties and no ``additionalProperties`` refuses unknown fields, unless it
      says it keeps them (``x-kubernetes-preserve-unknown-fields``);
    - ``int-or-string`` (built-in IntOrString) and Quantity accept what the API server decodes;
    - ``nullable`` (CRDs) admits null;
    - references point into ``_definitions.json`` (``where`` is the file being written).
    """
    if isinstance(node, list):
        return [_strict(item, where=where) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _strict(value, where=where) for key, value in node.items()}
    ref = out.get("$ref")
    if isinstance(ref, str) and ref.startswith(_REF) and where != DEFINITIONS:
        out["$ref"] = DEFINITIONS + ref
    if out.get("format") == "int-or-string":
        out.pop("type", None)
        out["oneOf"] = [{"type": "string"}, {"type": "integer"}]
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    keeps_unknown = out.get("x-kubernetes-preserve-unknown-fields") is True
    if "properties" in out and "additionalProperties" not in out and not keeps_unknown:
        out["additionalProperties"] = False
    return out


def _crd_schemas(crd: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each served version of a CRD as a strict schema, its metadata the built-in ObjectMeta."""
    names = crd["spec"]["names"]
    schemas = {}
    for version in crd["spec"]["versions"]:
        if not version.get("served", True):
            continue
        schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
        schema.setdefault("properties", {})["metadata"] = {
            "$ref": _REF + "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        }
        name = _kind_file(crd["spec"]["group"], version["name"], names["kind"])
        schemas[name] = _strict(schema, where=name)
    return schemas


def _schema_sources() -> tuple[Path, list[Path]]:
    kubernetes = module_dir(KUBERNETES_PIN, "k8s.io/kubernetes")
    operator = module_dir(OPERATOR_PIN, "github.com/open-telemetry/opentelemetry-operator")
    crds = sorted((operator / "config" / "crd" / "bases").glob("*.yaml"))
    return kubernetes / "api" / "openapi-spec" / "swagger.json", crds


@cache
def schemas() -> Path:
    """The folder of JSON schemas (built once per pinned release and generator)."""
    swagger, crds = _schema_sources()
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for source in [swagger, *crds]:
        digest.update(source.read_bytes())
    folder = StackSettings().cache_dir / "checktools" / "k8s-schemas" / digest.hexdigest()[:16]
    if (folder / DEFINITIONS).is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent))
    definitions = json.loads(swagger.read_text())["definitions"]
    files: dict[str, Any] = {DEFINITIONS: {"definitions": _strict(definitions, where=DEFINITIONS)}}
    for name, definition in definitions.items():
        for gvk in definition.get("x-kubernetes-group-version-kind", []):
            file = _kind_file(gvk["group"], gvk["version"], gvk["kind"])
            files[file] = {"$ref": DEFINITIONS + _REF + name}
    for crd in crds:
        files |= _crd_schemas(yaml.safe_load(crd.read_text()))
    for file, schema in files.items():
        (staging / file).write_text(json.dumps(schema))
    if folder.exists():
        shutil.rmtree(folder)
    staging.rename(folder)
    return folder


def kubeconform(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """kubeconform's verdict on each object, against the pinned release's strict schemas."""
    stream = "".join("---\n" + yaml.safe_dump(o) for o in objects)
    done = subprocess.run(
        [
            str(tool(KUBECONFORM)),
            "-strict",
            "-verbose",
            "-output",
            "json",
            "-schema-location",
            str(schemas() / SCHEMA_FILE),
            "-",
        ],
        input=stream,
        capture_output=True,
        text=True,
        check=False,
    )
    results: list[dict[str, Any]] = json.loads(done.stdout)["resources"]
    return results


# -- a real API server --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class ApiServer:
    """A kube-apiserver's address and an admin token (system:masters)."""

    url: str
    token: str

    def kubeconfig(self, path: Path) -> Path:
        """A kubeconfig file for this server and token (for Helm and the operator)."""
        cluster = {"server": self.url, "insecure-skip-tls-verify": True}
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "test", "cluster": cluster}],
            "users": [{"name": "admin", "user": {"token": self.token}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
            "current-context": "test",
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.token}"},
            # Its own self-signed certificate, on loopback.
            verify=False,
            timeout=30,
        )


def _service_account_key(folder: Path) -> Path:
    key = folder / "sa.key"
    subprocess.run(
        [
            "openssl",
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            key,
        ],
        check=True,
        capture_output=True,
    )
    return key


def _wait_ready(
    probe: Callable[[], bool], process: subprocess.Popen[bytes], log: Path, what: str
) -> None:
    """Poll ``probe`` until it is true; fail with ``log``'s tail if ``process`` exits first."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited: {log.read_text()[-3000:]}")
        try:
            if probe():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{what} is not ready after 180 s: {log.read_text()[-3000:]}")


def _start(
    scope: ExitStack, argv: list[str], log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``argv`` with its output in ``log``, stopped when ``scope`` closes."""
    output = log.open("wb")
    scope.callback(output.close)
    process = subprocess.Popen(argv, env=env, stdout=output, stderr=subprocess.STDOUT)
    scope.callback(_stop, process)
    return process


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def api_server(folder: Path) -> Iterator[ApiServer]:
    """etcd and kube-apiserver of the pinned release on free loopback ports, data in ``folder``;
    both stopped on exit, failure included. No controllers or nodes: objects are admitted and
    stored, nothing runs them."""
    token = base64.urlsafe_b64encode(os.urandom(24)).decode()
    (folder / "tokens.csv").write_text(f'{token},admin,admin,"system:masters"\n')
    key = _service_account_key(folder)
    client_port, peer_port, api_port = _free_port(), _free_port(), _free_port()
    etcd_url = f"http://127.0.0.1:{client_port}"
    with ExitStack() as scope:
        _start(
            scope,
            [
                str(tool(ETCD)),
                f"--data-dir={folder / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync",
            ],
            folder / "etcd.log",
        )
        log = folder / "kube-apiserver.log"
        apiserver = _start(
            scope,
            [
                str(tool(KUBE_APISERVER)),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                # No kubernetes Service endpoints to keep (it refuses a loopback address).
                "--endpoint-reconciler-type=none",
                f"--secure-port={api_port}",
                f"--cert-dir={folder / 'certs'}",
                f"--token-auth-file={folder / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                f"--service-account-key-file={key}",
                f"--service-account-signing-key-file={key}",
                "--service-account-issuer=https://kubernetes.default.svc",
                "--service-cluster-ip-range=10.96.0.0/16",
            ],
            log,
        )
        api = ApiServer(f"https://127.0.0.1:{api_port}", token)
        with api.client() as client:
            _wait_ready(
                lambda: client.get("/readyz").status_code == 200, apiserver, log, "kube-apiserver"
            )
        yield api


def resource_paths(client: httpx.Client) -> dict[tuple[str, str], tuple[str, bool]]:
    """(apiVersion, kind) -> (REST collection path prefix, namespaced), from discovery."""
    found: dict[tuple[str, str], tuple[str, bool]] = {}
    versions = ["v1"]
    bases = {"v1": "/api/v1"}
    for group in client.get("/apis").raise_for_status().json()["groups"]:
        for version in group["versions"]:
            versions.append(version["groupVersion"])
            bases[version["groupVersion"]] = f"/apis/{version['groupVersion']}"
    for group_version in versions:
        response = client.get(bases[group_version])
        if response.status_code == 404:  # a CRD's version listed before it is served
            continue
        for resource in response.raise_for_status().json()["resources"]:
            if "/" not in resource["name"]:
                found[(group_version, resource["kind"])] = (
                    f"{bases[group_version]}",
                    resource["namespaced"],
                )
                found[(group_version, resource["kind"] + "#name")] = (resource["name"], False)
    return found


def dry_run_apply(
    client: httpx.Client, objects: list[dict[str, Any]], namespace: str
) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Server-side apply of each object with ``dryRun=All`` and strict field validation: the
    API server's refusals and its warnings (Pod Security admission warns about a workload whose
    pods its namespace's level would refuse), by ``Kind/name``."""
    paths = resource_paths(client)
    refused: dict[str, str] = {}
    warnings: dict[str, list[str]] = {}
    for obj in objects:
        key = (obj["apiVersion"], obj["kind"])
        label = f"{obj['kind']}/{obj['metadata']['name']}"
        if key not in paths:
            refused[label] = f"the API server serves no {key}"
            continue
        base, namespaced = paths[key]
        resource = paths[(obj["apiVersion"], obj["kind"] + "#name")][0]
        scope = f"/namespaces/{namespace}" if namespaced else ""
        response = client.patch(
            f"{base}{scope}/{resource}/{obj['metadata']['name']}",
            params={"dryRun": "All", "fieldManager": "tbmon-test", "fieldValidation": "Strict"},
            content=json.dumps(obj),
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        if response.status_code >= 300:
            refused[label] = response.json().get("message", response.text)
        if response.headers.get_list("warning"):
            warnings[label] = response.headers.get_list("warning")
    return refused, warnings


# -- the OpenTelemetry Operator's webhooks -------------------------------------------------------

#: The operator's webhooks that instrumenting a pod goes through (config/webhook/manifests.yaml in
#: its module): Instrumentation defaults and validation, and the pod mutation.
OPERATOR_WEBHOOKS = (
    (
        "Mutating",
        "minstrumentation",
        "opentelemetry.io",
        "v1alpha1",
        "instrumentations",
        "/mutate-opentelemetry-io-v1alpha1-instrumentation",
    ),
    (
        "Validating",
        "vinstrumentation",
        "opentelemetry.io",
        "v1alpha1",
        "instrumentations",
        "/validate-opentelemetry-io-v1alpha1-instrumentation",
    ),
    ("Mutating", "mpod", "", "v1", "pods", "/mutate-v1-pod"),
)


def _serving_certificate(folder: Path) -> bytes:
    """A self-signed certificate for 127.0.0.1 in controller-runtime's file names."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(folder / "tls.key"),
            "-out",
            str(folder / "tls.crt"),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return (folder / "tls.crt").read_bytes()


@contextmanager
def operator(api: ApiServer, client: httpx.Client, folder: Path) -> Iterator[None]:
    """The pinned OpenTelemetry Operator's manager on ``api`` (its CRDs installed), with its
    Instrumentation and pod webhooks registered at the API server; stopped on exit."""
    folder.mkdir(parents=True, exist_ok=True)
    kubeconfig = api.kubeconfig(folder / "kubeconfig")
    # controller-runtime serves its webhooks with $TMPDIR/k8s-webhook-server/serving-certs.
    temporary = folder / "tmp"
    certificate = _serving_certificate(temporary / "k8s-webhook-server" / "serving-certs")
    port, metrics, probes = _free_port(), _free_port(), _free_port()
    log = folder / "operator.log"
    with ExitStack() as scope:
        process = _start(
            scope,
            [
                str(tool(OPERATOR)),
                f"--webhook-port={port}",
                f"--metrics-addr=127.0.0.1:{metrics}",
                f"--health-probe-addr=127.0.0.1:{probes}",
                "--enable-leader-election=false",
            ],
            log,
            env={
                "PATH": os.environ["PATH"],
                "KUBECONFIG": str(kubeconfig),
                "TMPDIR": str(temporary),
            },
        )
        ready = f"http://127.0.0.1:{probes}/readyz"
        _wait_ready(
            lambda: httpx.get(ready, timeout=2).status_code == 200, process, log, "the operator"
        )
        bundle = base64.b64encode(certificate).decode()
        for kind, name, group, version, resource, path in OPERATOR_WEBHOOKS:
            configuration = f"{kind.lower()}webhookconfigurations"
            registered = client.post(
                f"/apis/admissionregistration.k8s.io/v1/{configuration}",
                json={
                    "apiVersion": "admissionregistration.k8s.io/v1",
                    "kind": f"{kind}WebhookConfiguration",
                    "metadata": {"name": f"otel-operator-{name}"},
                    "webhooks": [
                        {
                            "name": f"{name}.kb.io",
                            "admissionReviewVersions": ["v1"],
                            "clientConfig": {
                                "url": f"https://127.0.0.1:{port}{path}",
                                "caBundle": bundle,
                            },
                            "failurePolicy": "Fail",
                            "sideEffects": "None",
                            "rules": [
                                {
                                    "apiGroups": [group],
                                    "apiVersions": [version],
                                    "operations": ["CREATE", "UPDATE"],
                                    "resources": [resource],
                                }
                            ],
                        }
                    ],
                },
            )
            registered.raise_for_status()
            scope.callback(
                client.delete,
                f"/apis/admissionregistration.k8s.io/v1/{configuration}/otel-operator-{name}",
            )
        yield


def kubelet_environment(container: dict[str, Any], pod: dict[str, Any]) -> dict[str, str]:
    """A container's environment as the kubelet gives it: field references resolved, ``$(NAME)``
    expanded from the variables before it."""
    fields = {
        "metadata.name": pod["metadata"]["name"],
        "metadata.namespace": pod["metadata"]["namespace"],
        "metadata.uid": pod["metadata"].get("uid", "00000000-0000-0000-0000-000000000000"),
        "spec.nodeName": "node-1",
        "status.podIP": "127.0.0.1",
        "status.hostIP": "127.0.0.1",
    }
    env: dict[str, str] = {}
    for variable in container.get("env", []):
        reference = variable.get("valueFrom", {}).get("fieldRef")
        if reference:
            env[variable["name"]] = fields[reference["fieldPath"]]
            continue
        value = variable.get("value", "")
        for name, known in env.items():
            value = value.replace(f"$({name})", known)
        env[variable["name"]] = value
    return env
