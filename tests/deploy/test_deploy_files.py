"""The shipped deployment files: Kubernetes manifests, the systemd unit and the fleet config.

Most checks are structural: there is no Kubernetes cluster and no systemd here. The configs
Gatekeeper itself reads are loaded with the real parser, and the embedded policy files are
loaded with the real policy loader. The fleet config is also run for real: two replica
processes on the real PostgreSQL and Redis, a call through each, then SIGTERM.
"""

from __future__ import annotations

import asyncio
import configparser
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gatekeeper.config import Config, parse_config
from gatekeeper.gate import load_policy_set
from gatekeeper.identity import issue_token
from gatekeeper.identity.keys import public_jwk
from gatekeeper.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
SIDECAR = K8S / "sidecar-pod.yaml"
NETPOL = K8S / "networkpolicy.yaml"
TWO_POD = K8S / "two-pod-variant.yaml"
CONTAINED = K8S / "contained-tool.yaml"
UNIT = DEPLOY / "systemd" / "gatekeeper.service"
ENV_EXAMPLE = DEPLOY / "systemd" / "gatekeeper.env.example"
FLEET = DEPLOY / "fleet" / "gatekeeper.yaml"
DOC = ROOT / "docs" / "deployment.md"

ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# What shutdown can take at most (gatekeeper/app.py): 30 s in-flight drain, 30 s audit flush, 5 s webhooks.
DRAIN_SECONDS = 30 + 30 + 5
PG_DSNS = ("postgresql://postgres@127.0.0.1:5432/test", "postgresql://root@127.0.0.1:5432/test")
REDIS_URL = "redis://127.0.0.1:6379/0"


# --- helpers ------------------------------------------------------------------------------------


def load_docs(path: Path) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    assert docs, f"{path}: no YAML documents"
    return docs


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected exactly one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_spec(docs: list[dict[str, Any]], deployment: str) -> dict[str, Any]:
    spec: dict[str, Any] = one(docs, "Deployment", deployment)["spec"]["template"]["spec"]
    return spec


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def container(spec: dict[str, Any], name: str) -> dict[str, Any]:
    found = [c for c in containers(spec) if c["name"] == name]
    assert len(found) == 1, f"no single container {name!r}"
    return found[0]


def env_of(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in c.get("env", [])}


def mount_path(c: dict[str, Any], volume: str) -> str:
    paths = [m["mountPath"] for m in c.get("volumeMounts", []) if m["name"] == volume]
    assert len(paths) == 1, f"{c['name']} does not mount {volume!r} exactly once"
    return str(paths[0])


def volume(spec: dict[str, Any], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [v for v in spec["volumes"] if v["name"] == name]
    assert len(found) == 1, f"no single volume {name!r}"
    return found[0]


def configmap_sources(spec: dict[str, Any], vol: dict[str, Any]) -> list[dict[str, Any]]:
    if "configMap" in vol:
        return [vol["configMap"]]
    return [s["configMap"] for s in vol["projected"]["sources"] if "configMap" in s]


def gatekeeper_config(
    docs: list[dict[str, Any]], spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> tuple[Config, Path]:
    """Parse the gatekeeper.yaml the gatekeeper container is started with, with the real parser.

    The container's ConfigMap volume is laid out in tmp_path as the kubelet would lay it out under
    its mountPath (only the keys this file ships), and every ``${VAR}`` and the webhook secret
    variable must come from the container's environment, from a Secret."""
    gk = container(spec, "gatekeeper")
    command = gk["command"]
    config_path = command[command.index("--config") + 1]
    env = env_of(gk)
    config_mount = next(
        m for m in gk["volumeMounts"] if config_path.startswith(m["mountPath"].rstrip("/") + "/")
    )
    root = tmp_path / "mounted"
    for source in configmap_sources(spec, volume(spec, config_mount["name"])):
        cms = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == source["name"]]
        for cm in cms:
            for item in source["items"]:
                target = root / item["path"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(cm["data"][item["key"]], encoding="utf-8")
    rel = Path(config_path).relative_to(config_mount["mountPath"])
    text = (root / rel).read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    needed = set(ENV_REF.findall(yaml.safe_dump(raw)))  # comments may mention ${VAR} too
    approvals = raw.get("approvals") or {}
    if approvals.get("webhook_url"):
        needed.add(approvals.get("webhook_secret_env", "GATEKEEPER_WEBHOOK_SECRET"))
    for name in sorted(needed):
        assert name in env, f"{config_path} needs ${{{name}}} but the gatekeeper container does not set it"
        assert "secretKeyRef" in env[name].get("valueFrom", {}), f"{name} must come from a Secret"
        monkeypatch.setenv(name, f"test-value-for-{name}-0123456789")
    # Paths in the file are container paths: parse against the mount point so they stay so.
    config = parse_config(raw, source=config_path, base=Path(config_path).parent)
    return config, root / rel.parent


def remap(path: Path, mount: str, local_root: Path) -> Path:
    return local_root / Path(path).relative_to(mount)


def userinfo(url: str) -> str:
    return url.split("://", 1)[1].split("/", 1)[0].rpartition("@")[0]


def assert_hardened(spec: dict[str, Any]) -> None:
    pod_sc = spec.get("securityContext", {})
    assert spec.get("hostNetwork") is not True and spec.get("hostPID") is not True
    assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault"
    for c in containers(spec):
        sc = c.get("securityContext", {})
        name = c["name"]
        assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, name
        assert sc.get("runAsUser", pod_sc.get("runAsUser", 0)) != 0, name
        assert sc.get("readOnlyRootFilesystem") is True, name
        assert sc.get("allowPrivilegeEscalation") is False, name
        assert sc.get("privileged", False) is False, name
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], name
        assert not sc.get("capabilities", {}).get("add"), name
        assert sc.get("seccompProfile", pod_sc.get("seccompProfile", {})).get("type") == "RuntimeDefault"


def assert_probes(gk: dict[str, Any]) -> None:
    ports = {p["name"]: p["containerPort"] for p in gk["ports"]}
    assert gk["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert gk["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gk["startupProbe"]["httpGet"]["path"] in ("/healthz", "/readyz")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        port = gk[probe]["httpGet"]["port"]
        assert ports.get(port, port) == 8080, f"{probe} must hit the agent listener (it serves /readyz)"
    for probe in ("readinessProbe", "startupProbe"):
        # /readyz waits up to 2 s for the approval store; the kubelet's default timeout is 1 s.
        assert gk[probe].get("timeoutSeconds", 1) > 2, probe


def policies_selecting(netpols: list[dict[str, Any]], labels: dict[str, str]) -> list[dict[str, Any]]:
    def selects(selector: dict[str, Any]) -> bool:
        assert not selector.get("matchExpressions"), "only matchLabels are checked here"
        return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())

    return [p for p in netpols if selects(p["spec"]["podSelector"])]


def egress_rules(policies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [rule for p in policies for rule in p["spec"].get("egress", [])]


def is_dns(rule: dict[str, Any]) -> bool:
    return all(p.get("port") == 53 for p in rule.get("ports", [{}])) and all(
        peer.get("podSelector", {}).get("matchLabels") == {"k8s-app": "kube-dns"} for peer in rule["to"]
    )


def assert_egress_is_narrow(rules: list[dict[str, Any]]) -> None:
    assert rules, "no egress allowed at all: not even DNS"
    for rule in rules:
        # A rule without `to` or without `ports` allows every destination or every port.
        assert rule.get("to"), f"egress rule without a destination allows everything: {rule}"
        assert rule.get("ports"), f"egress rule without ports allows every port: {rule}"
        for peer in rule["to"]:
            cidr = peer.get("ipBlock", {}).get("cidr")
            assert cidr not in ("0.0.0.0/0", "::/0"), "egress to the whole internet"
            if cidr is None:
                assert "podSelector" in peer, f"a bare namespaceSelector admits a whole namespace: {peer}"


# --- every file parses ----------------------------------------------------------------------------


def test_every_yaml_file_parses_and_every_manifest_is_well_formed() -> None:
    files = sorted(DEPLOY.rglob("*.yaml"))
    assert {SIDECAR, NETPOL, TWO_POD, CONTAINED, FLEET} <= set(files)
    for path in files:
        for doc in load_docs(path):
            if path.parent == K8S and path.name != "kustomization.yaml":  # a build file, not an object
                assert {"apiVersion", "kind", "metadata"} <= set(doc), path
                assert doc["metadata"].get("name"), path
                assert doc["metadata"].get("namespace") or doc["kind"] == "Namespace", path


# --- the sidecar pod ------------------------------------------------------------------------------


def test_agent_container_has_no_tool_credentials_and_only_the_sidecar_address() -> None:
    docs = load_docs(SIDECAR)
    spec = pod_spec(docs, "research-agent")
    agent = container(spec, "agent")
    gk = container(spec, "gatekeeper")
    assert "envFrom" not in agent, "envFrom would pull whole Secrets/ConfigMaps into the agent"
    for name, entry in env_of(agent).items():
        ref = entry.get("valueFrom", {})
        assert "secretKeyRef" not in ref, f"agent env {name} comes from a Secret"
        value = str(entry.get("value", ""))
        if "://" in value:
            assert value.startswith("http://127.0.0.1:8080"), f"agent env {name}={value} bypasses the sidecar"
    # The tool credentials exist only in the gatekeeper container.
    secret_envs = {
        e["valueFrom"]["secretKeyRef"]["name"] for e in gk["env"] if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert "gatekeeper-upstream-credentials" in secret_envs
    gk_volumes = {m["name"] for m in gk["volumeMounts"]}
    agent_volumes = {m["name"] for m in agent["volumeMounts"]}
    assert not gk_volumes & agent_volumes, "the agent must not share any volume with Gatekeeper"
    for name in agent_volumes:
        vol = volume(spec, name)
        if "secret" in vol:
            assert vol["secret"]["secretName"] not in {
                "gatekeeper-upstream-credentials",
                "gatekeeper-idp-keys",
            }
    text = yaml.safe_dump(agent)
    assert "TOOLS_API_KEY" not in text and "tools-api" not in text
    # Nothing else hands the agent credentials or addresses.
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False, "service links put every Service's address in the env"
    assert spec.get("shareProcessNamespace", False) is False, "the agent could read /proc/<gk>/environ"
    # Gatekeeper is a native sidecar: it starts before the agent and stops after it.
    assert gk in spec["initContainers"] and gk["restartPolicy"] == "Always"


def test_sidecar_gatekeeper_container_probes_shutdown_and_hardening() -> None:
    docs = load_docs(SIDECAR)
    spec = pod_spec(docs, "research-agent")
    gk = container(spec, "gatekeeper")
    assert gk["command"][:4] == ["python3", "-m", "gatekeeper", "serve"]
    assert_probes(gk)
    assert_hardened(spec)
    # readOnlyRootFilesystem: the data folder is a writable emptyDir, and GATEKEEPER_HOME points there.
    assert "emptyDir" in volume(spec, "gatekeeper-data")
    assert env_of(gk)["GATEKEEPER_HOME"]["value"] == mount_path(gk, "gatekeeper-data")
    assert "emptyDir" in volume(spec, "gatekeeper-tmp") and mount_path(gk, "gatekeeper-tmp") == "/tmp"
    # preStop delay + the whole drain fit in the grace period.
    prestop = gk["lifecycle"]["preStop"]["exec"]["command"]
    delay = float(re.search(r"sleep\((\d+(?:\.\d+)?)\)", prestop[-1]).group(1))  # type: ignore[union-attr]
    assert spec["terminationGracePeriodSeconds"] >= delay + DRAIN_SECONDS
    # The operator listener is exposed only through the Service (NetworkPolicy restricts who).
    svc = one(docs, "Service", "research-agent-gatekeeper-operator")
    assert [p["targetPort"] for p in svc["spec"]["ports"]] == ["operator"]
    assert {p["name"]: p["containerPort"] for p in gk["ports"]}["operator"] == 8081
    labels = one(docs, "Deployment", "research-agent")["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in svc["spec"]["selector"].items())


def test_sidecar_configmap_config_loads_and_its_policy_loads(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    docs = load_docs(SIDECAR)
    spec = pod_spec(docs, "research-agent")
    gk = container(spec, "gatekeeper")
    config, local_dir = gatekeeper_config(docs, spec, monkeypatch, tmp_path)
    # Listeners match the container ports and the agent's URL.
    assert (config.agent_listener.port, config.operator_listener.port) == (8080, 8081)
    assert env_of(container(spec, "agent"))["GATEKEEPER_URL"]["value"] == "http://127.0.0.1:8080"
    assert config.mode == "enforce" and not config.demo.enabled
    assert str(config.data_dir) == env_of(gk)["GATEKEEPER_HOME"]["value"]
    # Real identity keys from the Secret, never the development key.
    ident = config.identity
    assert ident.public_keys or ident.jwks_url
    assert ident.dev_key_path is None
    keys_mount = mount_path(gk, "gatekeeper-idp-keys")
    assert all(k.startswith(keys_mount + "/") for k in ident.public_keys)
    assert "secret" in volume(spec, "gatekeeper-idp-keys")
    # The upstream credential is expanded from the (Secret-fed) environment.
    assert config.upstreams["tools"].headers["Authorization"] == (
        "Bearer test-value-for-TOOLS_API_KEY-0123456789"
    )
    assert config.upstreams["tools"].timeout_seconds < 30, "in-flight forwards must fit in the 30 s drain"
    # The policy files the ConfigMap ships load, against the configured upstreams.
    mount = Path(mount_path(gk, "gatekeeper-config"))
    policy = config.policy
    files = type(policy)(
        model=remap(policy.model, str(mount), local_dir),
        policy=remap(policy.policy, str(mount), local_dir),
        tools=remap(policy.tools, str(mount), local_dir),
        budgets=remap(policy.budgets, str(mount), local_dir) if policy.budgets else None,
    )
    policy_set = load_policy_set(files, upstreams=config.upstreams.keys())
    assert set(policy_set.manifests) == {"tickets.search", "tickets.comment", "tickets.close"}
    assert policy_set.budgets is not None and policy_set.budgets.rules


# --- network policies -----------------------------------------------------------------------------


def test_networkpolicy_default_denies_and_allows_only_dns_and_tools() -> None:
    netpols = load_docs(NETPOL)
    assert all(d["kind"] == "NetworkPolicy" for d in netpols)
    pod = one(load_docs(SIDECAR), "Deployment", "research-agent")["spec"]["template"]
    labels = pod["metadata"]["labels"]
    mine = [p for p in policies_selecting(netpols, labels) if p["metadata"]["namespace"] == "agents"]
    deny = [p for p in mine if not p["spec"].get("ingress") and not p["spec"].get("egress")]
    assert deny and set(deny[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}, "no default deny"
    rules = egress_rules(mine)
    assert_egress_is_narrow(rules)
    assert any(is_dns(r) for r in rules)
    other = [r for r in rules if not is_dns(r)]
    assert {p["port"] for r in other for p in r["ports"]} == {8443}, "egress beyond the tool upstreams"
    ingress = [rule for p in mine for rule in p["spec"].get("ingress", [])]
    by_port = {p["port"]: r["from"] for r in ingress for p in r["ports"]}
    assert set(by_port) == {8080, 8081}
    assert by_port[8081] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gatekeeper-operators"}}}
    ]
    # The tools side admits only pods that carry a Gatekeeper.
    tools = one(netpols, "NetworkPolicy", "tools-api-only-from-gatekeeper")["spec"]
    assert tools["policyTypes"] == ["Ingress"]
    (peer,) = tools["ingress"][0]["from"]
    (expr,) = peer["podSelector"]["matchExpressions"]
    assert expr["key"] == "gatekeeper.example.com/proxy" and labels[expr["key"]] in expr["values"]
    # The honest caveat is written down where people read it.
    text = NETPOL.read_text(encoding="utf-8")
    assert "selects PODS, not containers" in text and "two-pod-variant.yaml" in text


def test_two_pod_variant_isolates_the_agent_by_network(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    docs = load_docs(TWO_POD)
    netpols = [d for d in docs if d["kind"] == "NetworkPolicy"]
    agent_spec = pod_spec(docs, "research-agent")
    gk_spec = pod_spec(docs, "gatekeeper")
    assert [c["name"] for c in containers(agent_spec)] == ["agent"], "no Gatekeeper in the agent pod"
    agent_labels = one(docs, "Deployment", "research-agent")["spec"]["template"]["metadata"]["labels"]
    gk_labels = one(docs, "Deployment", "gatekeeper")["spec"]["template"]["metadata"]["labels"]
    agent_pols = policies_selecting(netpols, agent_labels)
    assert any(set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"} for p in agent_pols)
    assert not [r for p in agent_pols for r in p["spec"].get("ingress", [])], "agent pods take no ingress"
    rules = egress_rules(agent_pols)
    assert_egress_is_narrow(rules)
    (to_gk,) = [r for r in rules if not is_dns(r)]
    assert to_gk["to"] == [{"podSelector": {"matchLabels": {"gatekeeper.example.com/proxy": "gateway"}}}]
    assert to_gk["ports"] == [{"protocol": "TCP", "port": 8080}]
    assert gk_labels["gatekeeper.example.com/proxy"] == "gateway"
    assert "gatekeeper.example.com/proxy" not in agent_labels
    # The agent knows only the gateway Service's address, and has no Secret but its own token.
    agent = container(agent_spec, "agent")
    for entry in agent["env"]:
        assert "valueFrom" not in entry
        if "://" in entry["value"]:
            assert entry["value"].startswith("http://gatekeeper.agents.svc.cluster.local:8080")
    gk_pols = policies_selecting(netpols, gk_labels)
    assert_egress_is_narrow(egress_rules(gk_pols))
    assert_hardened(agent_spec)
    assert_hardened(gk_spec)
    gk = container(gk_spec, "gatekeeper")
    assert_probes(gk)
    assert gk_spec["terminationGracePeriodSeconds"] >= 5 + DRAIN_SECONDS
    config, _ = gatekeeper_config(docs, gk_spec, monkeypatch, tmp_path)
    replicas = one(docs, "Deployment", "gatekeeper")["spec"]["replicas"]
    assert replicas > 1
    assert config.approvals.store.startswith("postgresql://"), "replicas must share one approval queue"
    assert config.budget_store.startswith("redis://"), "replicas must share one set of budgets"
    assert config.identity.jwks_url and config.identity.dev_key_path is None
    for url in (config.approvals.store, config.budget_store):
        assert ":" not in userinfo(url), f"a password in {url}"
    assert "secretKeyRef" in env_of(gk)["PGPASSWORD"]["valueFrom"]


def test_a_contained_tool_pod_reaches_only_the_egress_gate(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The Kubernetes twin of deploy/netns/tool-netns.sh (live-tested in test_tool_netns.py)."""
    two_pod = load_docs(TWO_POD)
    docs = load_docs(CONTAINED)
    netpols = [d for d in docs if d["kind"] == "NetworkPolicy"]
    tool_spec = pod_spec(docs, "contained-tool")
    tool_labels = one(docs, "Deployment", "contained-tool")["spec"]["template"]["metadata"]["labels"]
    gk_labels = one(two_pod, "Deployment", "gatekeeper")["spec"]["template"]["metadata"]["labels"]
    # The gate runs in the two-pod variant, on the port the Service and the policies name.
    config, _ = gatekeeper_config(two_pod, pod_spec(two_pod, "gatekeeper"), monkeypatch, tmp_path)
    assert config.egress_enabled and config.egress_address.port == 8082
    gk_ports = container(pod_spec(two_pod, "gatekeeper"), "gatekeeper")["ports"]
    assert {"name": "egress", "containerPort": 8082, "protocol": "TCP"} in gk_ports
    service = one(docs, "Service", "gatekeeper-egress")["spec"]
    assert service["selector"] == one(two_pod, "Service", "gatekeeper")["spec"]["selector"]
    assert [(p["port"], p["targetPort"]) for p in service["ports"]] == [(8082, 8082)]
    # The tool pod: both directions default-deny; its one way out is the gate's port. No DNS.
    tool_pols = policies_selecting(netpols, tool_labels)
    assert any(set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"} for p in tool_pols)
    rules = egress_rules(tool_pols)
    assert_egress_is_narrow(rules)
    assert rules == [
        {
            "to": [{"podSelector": {"matchLabels": {"gatekeeper.example.com/proxy": "gateway"}}}],
            "ports": [{"protocol": "TCP", "port": 8082}],
        }
    ]
    assert gk_labels["gatekeeper.example.com/proxy"] == "gateway"
    # Its proxy variables, both spellings, name the gate by the Service's injected address.
    env = env_of(container(tool_spec, "tool"))
    gate = env["GATEKEEPER_EGRESS"]["value"]
    assert gate == "http://$(GATEKEEPER_EGRESS_SERVICE_HOST):$(GATEKEEPER_EGRESS_SERVICE_PORT)"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        assert env[name]["value"] == env[name.lower()]["value"] == "$(GATEKEEPER_EGRESS)"
    assert env["NO_PROXY"]["value"] == env["no_proxy"]["value"] == ""
    assert tool_spec["enableServiceLinks"] is True
    assert_hardened(tool_spec)
    # The gate's pods take 8082 from tool pods only, and go out to public addresses on 80/443 only.
    gate_pol = one(docs, "NetworkPolicy", "gatekeeper-egress-gate")["spec"]
    assert policies_selecting([one(docs, "NetworkPolicy", "gatekeeper-egress-gate")], gk_labels)
    (ingress,) = gate_pol["ingress"]
    assert ingress["ports"] == [{"protocol": "TCP", "port": 8082}]
    assert ingress["from"] == [
        {"podSelector": {"matchLabels": {"gatekeeper.example.com/contained-tool": "true"}}}
    ]
    (out,) = gate_pol["egress"]
    assert sorted(p["port"] for p in out["ports"]) == [80, 443]
    (block,) = out["to"]
    assert {"10.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16"} <= set(
        block["ipBlock"]["except"]
    )


# --- systemd --------------------------------------------------------------------------------------


def read_unit() -> configparser.RawConfigParser:
    unit = configparser.RawConfigParser(strict=False, interpolation=None, delimiters=("=",))
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(UNIT.read_text(encoding="utf-8"))
    return unit


VENV = "/opt/gatekeeper"  # where the unit expects the venv (tests/deploy/test_image.py builds one so)


def test_systemd_unit_is_hardened_and_sized_for_the_drain(tmp_path: Path) -> None:
    unit = read_unit()
    assert {"Unit", "Service", "Install"} <= set(unit.sections())
    svc = unit["Service"]
    assert svc["ExecStart"].endswith("-m gatekeeper serve --config /etc/gatekeeper/gatekeeper.yaml")
    assert svc["ExecStart"].split()[0] == f"{VENV}/bin/python3", "the unit runs the venv's Python (PEP 668)"
    assert svc["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert svc["KillSignal"] == "SIGTERM"
    assert int(svc["TimeoutStopSec"]) >= DRAIN_SECONDS
    assert svc.get("DynamicUser") == "yes" or svc.get("User") not in (None, "root")
    assert svc["StateDirectory"] == "gatekeeper"
    assert "GATEKEEPER_HOME=/var/lib/gatekeeper" in svc["Environment"].split() or any(
        line.strip() == "Environment=GATEKEEPER_HOME=/var/lib/gatekeeper"
        for line in UNIT.read_text(encoding="utf-8").splitlines()
    )
    assert svc["RestartPreventExitStatus"] == "2", "a configuration error (exit 2) must not restart-loop"
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes",
        "RestrictNamespaces": "yes",
        "RestrictSUIDSGID": "yes",
        "LockPersonality": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert svc.get(key) == value, f"{key}={svc.get(key)!r}, want {value!r}"
    assert set(svc["RestrictAddressFamilies"].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    # Secrets come from an EnvironmentFile; every variable the shipped configs need is in the example.
    assert svc["EnvironmentFile"] == "/etc/gatekeeper/gatekeeper.env"
    example = ENV_EXAMPLE.read_text(encoding="utf-8")
    for name in ("TOOLS_API_KEY", "GATEKEEPER_WEBHOOK_SECRET", "PGPASSWORD"):
        assert re.search(rf"^#? ?{name}=", example, re.MULTILINE), name

    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        print("systemd-analyze is not installed: `systemd-analyze verify` NOT run (structure checked only)")
        return
    # verify checks that ExecStart's program exists: this machine has no /opt/gatekeeper venv, so
    # the copy verified runs this interpreter instead; every other line is verified as shipped.
    unit_copy = tmp_path / UNIT.name
    unit_copy.write_text(UNIT.read_text(encoding="utf-8").replace(f"{VENV}/bin/python3", sys.executable))
    result = subprocess.run(
        [analyze, "verify", str(unit_copy)], capture_output=True, text=True, timeout=60, check=False
    )
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        # verify also reports the host's own units and missing EnvironmentFile= paths on this machine
        if UNIT.name in line and "EnvironmentFile" not in line
    ]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr


# --- the fleet config -----------------------------------------------------------------------------


def fleet_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {
        "TOOLS_API_KEY": "tools-" + secrets.token_hex(8),
        "GATEKEEPER_WEBHOOK_SECRET": secrets.token_hex(16),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


def test_fleet_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    env = fleet_env(monkeypatch)
    raw = yaml.safe_load(FLEET.read_text(encoding="utf-8"))
    config = parse_config(raw, source=str(FLEET), base=FLEET.parent)
    assert config.approvals.store.startswith("postgresql://")
    assert config.approvals.postgres_schema == "gatekeeper"
    assert config.budget_store.startswith("redis://")
    assert config.identity.jwks_url and config.identity.jwks_url.startswith("https://")
    assert not config.identity.public_keys and config.identity.dev_key_path is None
    assert (
        config.approvals.webhook_url
        and config.approvals.webhook_secret == env["GATEKEEPER_WEBHOOK_SECRET"].encode()
    )
    assert config.upstreams["tools"].headers["Authorization"] == f"Bearer {env['TOOLS_API_KEY']}"
    assert not config.demo.enabled and config.mode == "enforce"
    assert config.policy_watch_seconds is not None, "each replica must watch its policy files"
    # The password is not in the file: neither in the PostgreSQL URL nor in the Redis URL.
    for url in (config.approvals.store, config.budget_store):
        assert ":" not in userinfo(url), f"a password in {url}"


def test_deployment_doc_names_every_metric_family_and_endpoint() -> None:
    text = DOC.read_text(encoding="utf-8")
    families = {m.name for m in Metrics().registry.collect()}
    assert families, "no metric families?"
    for name in sorted(families):
        assert name in text, f"docs/deployment.md does not mention the metric {name}"
    for needle in ("/healthz", "/readyz", "/metrics", "shutting_down", "gatekeeper_stopping", "SIGHUP"):
        assert needle in text, needle


# --- the real run: two replicas from the fleet config on the real PostgreSQL and Redis ------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Local(ThreadingHTTPServer):
    """A JWKS endpoint, a tool server and a webhook receiver on one loopback port."""

    daemon_threads = True

    def __init__(self, jwks: dict[str, Any]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.jwks = jwks
        self.tool_calls: list[tuple[str, str | None]] = []
        self.webhooks: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: _Local

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/jwks.json":
            self._json(200, self.server.jwks)
        else:
            self._json(404, {})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/tools/"):
            self.server.tool_calls.append((self.path, self.headers.get("Authorization")))
            self._json(200, {"ok": True, "tool": self.path.removeprefix("/tools/"), "echo": json.loads(body)})
        elif self.path == "/hook":
            self.server.webhooks.append(json.loads(body)["event"])
            self._json(200, {})
        else:
            self._json(404, {})


def http(
    method: str, url: str, body: Any = None, token: str | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=hdrs, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read() or b"{}")


def pg_dsn() -> str:
    async def probe() -> str:
        errors = []
        for dsn in PG_DSNS:
            try:
                conn = await asyncpg.connect(dsn, timeout=5)
            except (OSError, asyncpg.PostgresError) as exc:
                errors.append(f"{dsn}: {exc}")
                continue
            await conn.close()
            return dsn
        pytest.fail("PostgreSQL at 127.0.0.1:5432/test is required: " + "; ".join(errors))

    return asyncio.run(probe())


def drop_schema(dsn: str, schema: str) -> None:
    async def drop() -> None:
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop())


@contextlib.contextmanager
def local_services(jwks: dict[str, Any]) -> Iterator[_Local]:
    server = _Local(jwks)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, deadline: float) -> dict[str, Any]:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"replica exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            status, body = http("GET", f"{url}/readyz")
        except OSError:
            status, body = 0, {}
        if status == 200:
            return body
        time.sleep(0.1)
    pytest.fail(f"{url} not ready in time:\n{log.read_text(errors='replace')[-3000:]}")


def test_two_fleet_replicas_really_run_on_postgres_and_redis(tmp_path: Path) -> None:
    """The fleet config, adapted only where this machine differs (addresses, ports, files), runs
    as two real `python3 -m gatekeeper serve` processes sharing the real PostgreSQL and Redis."""
    started = time.monotonic()
    dsn = pg_dsn()
    redis_client = redis.Redis.from_url(REDIS_URL)
    try:
        redis_client.ping()
    except (redis.RedisError, OSError) as exc:
        redis_client.close()
        pytest.fail(f"Redis at {REDIS_URL} is required: {exc}")

    key = ec.generate_private_key(ec.SECP256R1())
    key_path = tmp_path / "idp.key.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    # The policy the sidecar ConfigMap ships (one `tools` upstream, a budget on every call).
    cm = one(load_docs(SIDECAR), "ConfigMap", "research-agent-gatekeeper")["data"]
    policies = tmp_path / "policies"
    policies.mkdir()
    for name in ("model.conf", "policy.csv", "tools.yaml", "budgets.yaml"):
        (policies / name).write_text(cm[name], encoding="utf-8")

    schema = f"gk_deploy_{secrets.token_hex(5)}"
    agent_sub = f"deploy-test-{secrets.token_hex(5)}"
    tools_key = "tools-" + secrets.token_hex(8)
    env = {
        **os.environ,
        "TOOLS_API_KEY": tools_key,
        "GATEKEEPER_WEBHOOK_SECRET": secrets.token_hex(16),
        "PYTHONUNBUFFERED": "1",
    }
    procs: list[tuple[subprocess.Popen[bytes], Path, str, str]] = []
    try:
        with local_services({"keys": [public_jwk(key.public_key())]}) as local:
            for i in range(2):
                raw = yaml.safe_load(FLEET.read_text(encoding="utf-8"))
                agent_port, operator_port = free_port(), free_port()
                raw["data_dir"] = str(tmp_path / f"replica-{i}")
                raw["listeners"] = {
                    "agent": {"host": "127.0.0.1", "port": agent_port},
                    "operator": {"host": "127.0.0.1", "port": operator_port},
                }
                raw["identity"]["jwks_url"] = f"{local.url}/jwks.json"
                raw["upstreams"]["tools"]["url"] = local.url
                raw["upstreams"]["tools"]["mcp_url"] = f"{local.url}/mcp"
                raw["policy"] = {
                    "model": str(policies / "model.conf"),
                    "policy": str(policies / "policy.csv"),
                    "tools": str(policies / "tools.yaml"),
                    "budgets": str(policies / "budgets.yaml"),
                    "watch_seconds": raw["policy"]["watch_seconds"],
                }
                raw["approvals"].update(store=dsn, postgres_schema=schema, webhook_url=f"{local.url}/hook")
                raw["budgets"]["store"] = REDIS_URL
                cfg = tmp_path / f"replica-{i}.yaml"
                cfg.write_text(yaml.safe_dump(raw), encoding="utf-8")
                log = tmp_path / f"replica-{i}.log"
                with log.open("wb") as out:
                    proc = subprocess.Popen(
                        [sys.executable, "-m", "gatekeeper", "serve", "--config", str(cfg)],
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        env=env,
                        cwd=tmp_path,
                    )
                procs.append(
                    (proc, log, f"http://127.0.0.1:{agent_port}", f"http://127.0.0.1:{operator_port}")
                )

            deadline = time.monotonic() + 12
            versions = {wait_ready(url, proc, log, deadline)["policy_version"] for proc, log, url, _ in procs}
            assert len(versions) == 1, f"replicas disagree on the policy version: {versions}"

            issuer = raw["identity"]["issuer"]
            agent = issue_token(
                key_path, subject=agent_sub, roles=["agent"], issuer=issuer, audience="gatekeeper"
            )
            operator = issue_token(
                key_path,
                subject="ops-1",
                roles=["oncall"],
                operator=True,
                issuer=issuer,
                audience="gatekeeper-operator",
            )
            # An allowed call through each replica, with the credential injected on the way out.
            for i, (_, _, url, _) in enumerate(procs):
                call = {"tool": "tickets.search", "arguments": {"query": f"replica {i}"}}
                status, body = http("POST", f"{url}/v1/invoke", call, agent)
                assert (status, body["outcome"]) == (200, "allowed"), body
                assert body["result"]["echo"] == {"query": f"replica {i}"}
            assert local.tool_calls == [("/tools/tickets.search", f"Bearer {tools_key}")] * 2

            # One approval queue: held on replica 0, seen and approved on replica 1, run on replica 1.
            (_, _, a_url, _), (_, _, b_url, b_ops) = procs
            close = {"tool": "tickets.close", "arguments": {"ticket": "OPS-1", "reason": "deploy test"}}
            status, held = http("POST", f"{a_url}/v1/invoke", close, agent, {"Prefer": "wait=0"})
            assert (status, held["outcome"]) == (202, "pending"), held
            status, seen = http("GET", f"{b_ops}/v1/approvals/{held['approval_id']}", token=operator)
            assert status == 200 and seen["tool"] == "tickets.close", seen
            status, voted = http(
                "POST", f"{b_ops}/v1/approvals/{held['approval_id']}/approve", {"comment": "ok"}, operator
            )
            assert status == 200, voted
            status, body = http("POST", f"{b_url}/v1/invoke", close, agent)
            assert (status, body["outcome"]) == (200, "allowed"), body

            # Graceful stop: SIGTERM both, exit 0, `gatekeeper_stopping` logged.
            for proc, *_ in procs:
                proc.send_signal(signal.SIGTERM)
            for proc, log, *_ in procs:
                assert proc.wait(timeout=15) == 0, log.read_text(errors="replace")[-3000:]
                events = [
                    json.loads(line)["event"] for line in log.read_text().splitlines() if line.startswith("{")
                ]
                assert "gatekeeper_stopping" in events, events
            assert "created" in local.webhooks and "approved" in local.webhooks
    finally:
        for proc, *_ in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        drop_schema(dsn, schema)
        keys = list(redis_client.scan_iter(match=f"gatekeeper:budget:*|user:{agent_sub}|*", count=500))
        if keys:
            redis_client.delete(*keys)
        redis_client.close()
    assert time.monotonic() - started < 30
