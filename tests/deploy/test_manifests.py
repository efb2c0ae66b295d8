"""The deployment files as shipped: no cluster, container runtime or systemd runs here, so each
manifest is parsed and checked for what the running shard relies on (deploy/README.md)."""

from __future__ import annotations

import base64
import copy
import re
import secrets
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import falcon.testing
import pytest
import yaml

from interlink import settings as settings_module

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUSTOMIZE = DEPLOY / "kubernetes"
BUILDS = ("base", "overlays/example")
UNIT = DEPLOY / "systemd" / "interlink@.service"
PUBLIC_PREFIXES = {"/webhooks", "/media"}
SECRET_SETTINGS = {"INTERLINK_REDIS_URL", "INTERLINK_SECRET_KEY", "INTERLINK_ADMIN_TOKEN"}
# Stand-ins for what the Secret holds, generated here (never real credentials).
FAKE_SECRETS = {
    "INTERLINK_REDIS_URL": "redis://redis:6379/0",
    "INTERLINK_SECRET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    "INTERLINK_ADMIN_TOKEN": secrets.token_urlsafe(32),
}
# Time the endpoint controllers, kube-proxy and ingress controllers take to drop a terminating
# pod: a few seconds on a healthy cluster; preStop waits at least this long.
ENDPOINT_PROPAGATION_SECONDS = 5
DEFAULT_SHUTDOWN_TIMEOUT = settings_module.Settings().shutdown_timeout

Doc = dict[str, Any]


# -- a small kustomize: only what the shipped kustomizations use ------------------------------
KUSTOMIZATION_KEYS = {
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "images",
    "replicas",
    "patches",
    "labels",
}


def _docs(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def _kustomization(directory: Path) -> Doc:
    (doc,) = _docs(directory / "kustomization.yaml")
    unknown = set(doc) - KUSTOMIZATION_KEYS
    assert not unknown, f"{directory}: this test does not resolve {unknown}; extend build()"
    return doc


def _merge(base: Any, patch: Any) -> Any:
    """Strategic merge as far as the patches need: maps merge, lists of named maps merge by
    name (containers, env, volumes, ports), other lists are replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = _merge(base[key], value) if key in base else value
        return merged
    if (
        isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(item, dict) and "name" in item for item in base + patch)
    ):
        by_name = {item["name"]: item for item in base}
        merged_list = [
            _merge(by_name[item["name"]], item) if item["name"] in by_name else item
            for item in patch
        ]
        patched = {item["name"] for item in patch}
        return [item for item in base if item["name"] not in patched] + merged_list
    return patch


def build(directory: Path) -> list[Doc]:
    kustomization = _kustomization(directory)
    docs: list[Doc] = []
    for resource in kustomization.get("resources", []):
        path = (directory / resource).resolve()
        docs += build(path) if path.is_dir() else copy.deepcopy(_docs(path))
    for patch_ref in kustomization.get("patches", []):
        (patch,) = _docs(directory / patch_ref["path"])
        for index, doc in enumerate(docs):
            if (doc["kind"], doc["metadata"]["name"]) == (
                patch["kind"],
                patch["metadata"]["name"],
            ):
                docs[index] = _merge(doc, patch)
    for entry in kustomization.get("replicas", []):
        for doc in docs:
            if doc["metadata"]["name"] == entry["name"] and "replicas" in doc.get("spec", {}):
                doc["spec"]["replicas"] = entry["count"]
    for entry in kustomization.get("images", []):
        for container in (c for doc in docs for c in _containers(doc)):
            name, _, _ = container["image"].partition(":")
            if name == entry["name"]:
                container["image"] = f"{entry.get('newName', name)}:{entry['newTag']}"
    if "namespace" in kustomization:
        for doc in docs:
            doc["metadata"]["namespace"] = kustomization["namespace"]
    return docs


def _containers(doc: Doc) -> list[Doc]:
    return list(doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []))


def _one(docs: list[Doc], kind: str) -> Doc:
    (found,) = [doc for doc in docs if doc["kind"] == kind]
    return found


def _statefulset(name: str) -> tuple[Doc, Doc, dict[str, Doc]]:
    """The StatefulSet of a build, its one container and that container's env by name."""
    statefulset = _one(build(KUSTOMIZE / name), "StatefulSet")
    (container,) = _containers(statefulset)
    return statefulset, container, {entry["name"]: entry for entry in container.get("env", [])}


def _yaml_files() -> Iterator[Path]:
    """The Kubernetes manifests (deploy/monitoring holds Prometheus and Grafana files)."""
    yield from sorted(KUSTOMIZE.rglob("*.yaml"))
    yield from sorted(KUSTOMIZE.rglob("*.yml"))


# -- Kubernetes ---------------------------------------------------------------------------------
def test_every_manifest_parses_and_names_its_kind() -> None:
    files = list(_yaml_files())
    assert len(files) >= 8
    for path in files:
        for doc in _docs(path):
            assert {"apiVersion", "kind"} <= set(doc), path
            if doc["kind"] != "Kustomization":
                assert doc["metadata"]["name"], path


def test_kustomizations_list_only_files_that_exist_and_every_manifest_is_listed() -> None:
    listed: set[Path] = set()
    for kustomization_file in KUSTOMIZE.rglob("kustomization.yaml"):
        directory = kustomization_file.parent
        kustomization = _kustomization(directory)
        refs = list(kustomization.get("resources", []))
        refs += [patch["path"] for patch in kustomization.get("patches", [])]
        assert refs, directory
        for ref in refs:
            path = (directory / ref).resolve()
            assert path.is_file() or (path / "kustomization.yaml").is_file(), f"{directory}: {ref}"
            listed.add(path)
        listed.add(kustomization_file.resolve())
    orphans = {path.resolve() for path in KUSTOMIZE.rglob("*.yaml")} - listed
    assert not orphans, f"manifests no kustomization uses: {orphans}"


@pytest.mark.parametrize("name", BUILDS)
def test_shard_count_equals_replicas_and_the_ordinal_is_the_shard_id(name: str) -> None:
    statefulset, _, env = _statefulset(name)
    replicas = statefulset["spec"]["replicas"]
    assert env["INTERLINK_SHARD_COUNT"]["value"] == str(replicas)
    # No fixed shard id: each pod reads its own from its host name, <statefulset>-<ordinal>.
    assert "INTERLINK_SHARD_ID" not in env
    last = f"{statefulset['metadata']['name']}-{replicas - 1}"
    loaded = settings_module.load(
        {"INTERLINK_SHARD_COUNT": env["INTERLINK_SHARD_COUNT"]["value"], "HOSTNAME": last}
        | FAKE_SECRETS
    )
    assert (loaded.shard_id, loaded.shard_count) == (replicas - 1, replicas)


@pytest.mark.parametrize("name", BUILDS)
def test_the_pods_are_hardened(name: str) -> None:
    statefulset, container, env = _statefulset(name)
    pod = statefulset["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    # A Service named "interlink" would inject INTERLINK_PORT=tcp://... into the settings.
    assert pod["enableServiceLinks"] is False
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context.get("privileged", False) is False
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"]
    # What must be written goes to emptyDirs: /tmp and the data dir.
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    assert {"/tmp", env["INTERLINK_DATA_DIR"]["value"]} <= set(mounts)
    assert all("emptyDir" in volumes[volume] for volume in mounts.values())
    spread = {c["topologyKey"] for c in pod["topologySpreadConstraints"]}
    assert {"kubernetes.io/hostname", "topology.kubernetes.io/zone"} <= spread
    assert container["image"].split(":", 1)[-1] not in ("", "latest") or name == "base"


@pytest.mark.parametrize("name", BUILDS)
def test_secrets_come_from_a_secret_and_every_setting_is_known(name: str) -> None:
    _, _, env = _statefulset(name)
    for variable in SECRET_SETTINGS:
        assert "value" not in env[variable]
        assert env[variable]["valueFrom"]["secretKeyRef"]["name"]
    unknown = {n for n in env if n.startswith("INTERLINK_")} - settings_module.KNOWN
    assert not unknown
    loaded = settings_module.load(
        {n: e["value"] for n, e in env.items() if "value" in e}
        | {"HOSTNAME": "interlink-0"}
        # What the Secret supplies: a fleet refuses to start without each of them.
        | {n: FAKE_SECRETS[n] for n in SECRET_SETTINGS}
    )
    assert loaded.host == "0.0.0.0" and loaded.unknown == ()


@pytest.mark.parametrize("name", BUILDS)
def test_grace_period_covers_prestop_and_the_drain_deadline(name: str) -> None:
    statefulset, container, env = _statefulset(name)
    pre_stop = container["lifecycle"]["preStop"]
    command = pre_stop["exec"]["command"] if "exec" in pre_stop else None
    sleep = float(command[1]) if command else float(pre_stop["sleep"]["seconds"])
    assert command is None or command[0] == "sleep"
    assert sleep > ENDPOINT_PROPAGATION_SECONDS
    drain = float(env.get("INTERLINK_SHUTDOWN_TIMEOUT", {}).get("value", DEFAULT_SHUTDOWN_TIMEOUT))
    grace = statefulset["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > sleep + drain


@pytest.mark.parametrize("name", BUILDS)
def test_services_pdb_and_headless_governing_service(name: str) -> None:
    docs = build(KUSTOMIZE / name)
    statefulset = _one(docs, "StatefulSet")
    labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert statefulset["spec"]["selector"]["matchLabels"].items() <= labels.items()
    services = {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == "Service"}
    governing = services[statefulset["spec"]["serviceName"]]
    assert governing["spec"]["clusterIP"] == "None"
    for service in services.values():
        # Only the Ingress is public: no Service opens a port outside the cluster.
        assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
        assert service["spec"]["selector"].items() <= labels.items()
    pdb = _one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1


def test_probe_paths_are_routes_of_the_app(client: falcon.testing.TestClient) -> None:
    _, container, _ = _statefulset("overlays/example")
    paths = {
        "readiness": container["readinessProbe"]["httpGet"]["path"],
        "liveness": container["livenessProbe"]["httpGet"]["path"],
    }
    assert paths == {"readiness": "/readyz", "liveness": "/healthz"}
    for path in paths.values():
        assert client.simulate_get(path).status_code != 404, path
    # The public prefixes lead to real routes too.
    assert client.simulate_post("/webhooks/whatsapp", body=b"{}").status_code != 404


def test_the_ingress_exposes_only_the_public_prefixes_over_tls() -> None:
    docs = build(KUSTOMIZE / "overlays/example")
    services = {doc["metadata"]["name"] for doc in docs if doc["kind"] == "Service"}
    ingresses = [doc for doc in docs if doc["kind"] == "Ingress"]
    assert ingresses
    for ingress in ingresses:
        spec = ingress["spec"]
        tls_hosts = {host for entry in spec["tls"] for host in entry["hosts"]}
        assert all(entry["secretName"] for entry in spec["tls"])
        assert "defaultBackend" not in spec
        for rule in spec["rules"]:
            assert rule["host"] in tls_hosts
            paths = rule["http"]["paths"]
            assert {p["path"] for p in paths} == PUBLIC_PREFIXES
            for entry in paths:
                assert entry["pathType"] == "Prefix"
                assert entry["backend"]["service"]["name"] in services


# -- the container image ------------------------------------------------------------------------
def _dockerfile() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def test_the_image_is_multi_stage_non_root_and_serves_on_all_addresses() -> None:
    instructions = _dockerfile()
    stages = [i for i, (op, _) in enumerate(instructions) if op == "FROM"]
    assert len(stages) == 2
    build_stage = instructions[stages[0] : stages[1]]
    final = instructions[stages[1] :]
    assert any(op == "RUN" and "interlink-install wheels" in arg for op, arg in build_stage)
    assert any(op == "RUN" and "interlink-install install" in arg for op, arg in final)
    user = [arg for op, arg in final if op == "USER"][-1]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) > 0
    pod = _one(build(KUSTOMIZE / "base"), "StatefulSet")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == int(uid)
    env_text = " ".join(arg for op, arg in final if op == "ENV")
    assert "INTERLINK_HOST=0.0.0.0" in env_text
    data_dir = re.search(r"INTERLINK_DATA_DIR=(\S+)", env_text)
    assert data_dir is not None
    assert data_dir.group(1) in " ".join(arg for op, arg in final if op == "VOLUME")
    assert ("STOPSIGNAL", "SIGTERM") in final
    entry = [arg for op, arg in final if op == "ENTRYPOINT"][-1]
    command = [arg for op, arg in final if op == "CMD"][-1]
    assert yaml.safe_load(entry) + yaml.safe_load(command) == ["interlink", "serve"]


def test_what_the_image_copies_exists_and_is_not_ignored() -> None:
    allowed = [
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.startswith("!")
    ]
    for op, arg in _dockerfile():
        if op != "COPY" or arg.startswith("--from"):
            continue
        *sources, _ = shlex.split(arg)
        for source in sources:
            assert (ROOT / source).exists(), source
            assert any(source == a or source.startswith(a + "/") for a in allowed), source


# -- systemd ------------------------------------------------------------------------------------
def _unit() -> dict[str, dict[str, list[str]]]:
    """systemd's format: sections, repeatable keys, later assignments add (or reset if empty)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            assert line.endswith("]"), line
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None and "=" in line, line
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_the_systemd_unit_runs_one_hardened_shard_per_instance() -> None:
    unit = _unit()
    assert {"Unit", "Service", "Install"} <= set(unit)
    service = unit["Service"]

    def one(key: str) -> str:
        (value,) = service[key]
        return value

    program, *arguments = one("ExecStart").split()
    assert (Path(program).name, arguments) == ("interlink", ["serve"])
    assert one("DynamicUser") == "yes" or one("User") not in ("", "root")
    assert any(path.lstrip("-") == "/etc/interlink/%i.env" for path in service["EnvironmentFile"])
    assert any("%" not in path for path in service["EnvironmentFile"])  # a common file
    environment = dict(item.split("=", 1) for item in service["Environment"])
    assert environment["INTERLINK_SHARD_ID"] == "%i"
    assert not set(environment) - settings_module.KNOWN - {"PYTHONDONTWRITEBYTECODE"}
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
        "KillSignal": "SIGTERM",
        "Restart": "on-failure",
        "MemoryDenyWriteExecute": "yes",
    }.items():
        assert one(key) == value, key
    assert one("StateDirectory")
    assert set(one("RestrictAddressFamilies").split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert "@system-service" in service["SystemCallFilter"]
    drain = float(environment.get("INTERLINK_SHUTDOWN_TIMEOUT", DEFAULT_SHUTDOWN_TIMEOUT))
    assert float(one("TimeoutStopSec")) > drain
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_systemd_accepts_every_directive_of_the_unit(tmp_path: Path) -> None:
    """``systemd-analyze verify`` names every unknown or malformed directive (the binary the unit
    starts is swapped for one that exists here)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("no systemd-analyze on this machine")
    text = UNIT.read_text(encoding="utf-8")
    program = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    copy_ = tmp_path / UNIT.name
    copy_.write_text(text.replace(program, f"ExecStart={sys.executable} -m interlink serve"))
    result = subprocess.run(
        [analyze, "verify", str(tmp_path / "interlink@3.service")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


_MDWE_PROBE = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    sys.exit(77)
from gevent import monkey
monkey.patch_all()
import gevent, tempfile, pathlib, redis
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from interlink.store.embedded import EmbeddedValkey
import interlink.runtime  # every module the shard loads
done = gevent.joinall([gevent.spawn(lambda n=n: (gevent.sleep(0), n)[1]) for n in range(50)])
assert sum(g.value for g in done) == 1225
key = AESGCM.generate_key(bit_length=256)
assert AESGCM(key).decrypt(b"0" * 12, AESGCM(key).encrypt(b"0" * 12, b"x", None), None) == b"x"
server = EmbeddedValkey(pathlib.Path(tempfile.mkdtemp()), appendonly=False)
server.start()
try:
    assert redis.Redis.from_url(server.url).eval("return 1", 0) == 1
finally:
    server.stop()
"""


def test_the_shard_runs_with_memory_deny_write_execute(tmp_path: Path) -> None:
    """The unit sets MemoryDenyWriteExecute: gevent, greenlet, cryptography's cffi bindings and
    the Valkey server must run without ever making writable memory executable. Linux 6.3+
    enforces the same rule per process (PR_SET_MDWE, inherited by Valkey)."""
    result = subprocess.run(
        [sys.executable, "-c", _MDWE_PROBE],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    if result.returncode == 77:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux < 6.3)")
    assert result.returncode == 0, result.stderr[-3000:]
