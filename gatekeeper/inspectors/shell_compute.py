"""Compute provisioning spelled as shell commands: cloud CLIs, containers, Kubernetes, Slurm.

``compute.provision`` is one tool, but an agent with a shell can ask ``aws``, ``gcloud``,
``az``, ``docker``, ``kubectl`` or ``sbatch`` for machines just as well. Each such command is
``compute.provision`` (held by the default pack), and when GPUs can be read from it, also
``compute.gpu:<TYPE>`` with the ``gpus`` and ``gpu_hours`` amounts budgets count, exactly as
the ``compute`` inspector gives them. What the command does not say is assumed large, never
small: an unknown GPU count is ``ASSUMED_GPUS``, an unknown duration ``ASSUMED_HOURS`` (the
evidence says so). GPU containers running miner images, and hugepages/MSR tuning, are
``crypto.mine``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

from gatekeeper.inspectors.shell_programs import MINERS, Handler, Word, fs, parse_opts
from gatekeeper.models import Capability

if TYPE_CHECKING:
    from gatekeeper.inspectors.shell import Inspection

__all__ = ["ASSUMED_GPUS", "ASSUMED_HOURS", "HANDLERS", "STDIN_MANIFEST", "manifest"]

ASSUMED_HOURS: Final = 24.0  # a machine nobody said when to stop runs at least a day
ASSUMED_GPUS: Final = 8  # "all GPUs" / a GPU machine of unknown shape: a full node
STDIN_MANIFEST: Final = "\x00stdin-manifest"  # kubectl -f -: the manifest arrives on stdin
MAX_GPUS: Final = 1_000_000

# instance type -> (GPU type, GPUs per instance)
_AWS: Final[dict[str, tuple[str, int]]] = {
    "p2.xlarge": ("K80", 1),
    "p2.8xlarge": ("K80", 8),
    "p2.16xlarge": ("K80", 16),
    "p3.2xlarge": ("V100", 1),
    "p3.8xlarge": ("V100", 4),
    "p3.16xlarge": ("V100", 8),
    "p3dn.24xlarge": ("V100", 8),
    "p4d.24xlarge": ("A100", 8),
    "p4de.24xlarge": ("A100", 8),
    "p5.48xlarge": ("H100", 8),
    "p5e.48xlarge": ("H200", 8),
    "p5en.48xlarge": ("H200", 8),
    "g4dn.12xlarge": ("T4", 4),
    "g4dn.metal": ("T4", 8),
    "g5.12xlarge": ("A10G", 4),
    "g5.24xlarge": ("A10G", 4),
    "g5.48xlarge": ("A10G", 8),
    "g6.12xlarge": ("L4", 4),
    "g6.24xlarge": ("L4", 4),
    "g6.48xlarge": ("L4", 8),
    "trn1.32xlarge": ("TRAINIUM", 16),
    "trn1n.32xlarge": ("TRAINIUM", 16),
}
_AWS_FAMILY: Final[dict[str, str]] = {
    "g4dn": "T4",
    "g5": "A10G",
    "g6": "L4",
    "g6e": "L40S",
    "g4ad": "V520",
    "p3": "V100",
    "p4d": "A100",
    "p5": "H100",
}
_AZURE: Final[dict[str, tuple[str, int]]] = {
    "standard_nd96asr_v4": ("A100", 8),
    "standard_nd96amsr_a100_v4": ("A100", 8),
    "standard_nd96isr_h100_v5": ("H100", 8),
    "standard_nc24ads_a100_v4": ("A100", 1),
    "standard_nc48ads_a100_v4": ("A100", 2),
    "standard_nc96ads_a100_v4": ("A100", 4),
    "standard_nc4as_t4_v3": ("T4", 1),
    "standard_nc64as_t4_v3": ("T4", 4),
}
_GCP_ACCELERATORS: Final = (
    ("h100", "H100"),
    ("h200", "H200"),
    ("a100", "A100"),
    ("l4", "L4"),
    ("t4", "T4"),
    ("v100", "V100"),
    ("p100", "P100"),
    ("p4", "P4"),
    ("k80", "K80"),
    ("b200", "B200"),
)
_GCP_MACHINE_RE: Final = re.compile(r"(a2|a3|a4)-[a-z]+gpu-(\d+)g")
_GCP_G2: Final = {"g2-standard-24": 2, "g2-standard-48": 4, "g2-standard-96": 8}
_GPU_TYPE_RE: Final = re.compile(r"[A-Z0-9_-]{1,64}")
_K8S_GPU_RE: Final = re.compile(
    r"""["']?(?:nvidia\.com|amd\.com|gpu\.intel\.com)/gpu["']?\s*[:=]\s*["']?(\d+)"""
)
_K8S_TYPE_RE: Final = re.compile(
    r"(?:gpu-product|accelerator|gpu\.product)\S*\s*[:=]\s*[\"']?([A-Za-z0-9-]+)"
)
_DURATION_RE: Final = re.compile(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?")


def _gpu_type(text: str) -> str:
    """A GPU type name as the compute inspector spells it (upper case), or UNKNOWN."""
    low = text.lower()
    for key, name in _GCP_ACCELERATORS:
        if key in low:
            return name
    name = re.sub(r"[^A-Z0-9_-]", "", text.upper())
    return name if name and _GPU_TYPE_RE.fullmatch(name) else "UNKNOWN"


def _count(text: str | None, default: int) -> int:
    if text is None:
        return default
    m = re.fullmatch(r"(\d+)(?::(\d+))?", text.strip())  # aws --count MIN:MAX: the max
    if m is None:
        return default
    n = int(m.group(2) or m.group(1))
    return n if 0 < n <= MAX_GPUS else default


def slurm_hours(text: str) -> float | None:
    """Slurm ``--time``: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS."""
    m = _DURATION_RE.fullmatch(text.strip())
    if m is None:
        return None
    days, a, b, c = m.groups()
    if days is not None:
        return int(days) * 24 + int(a) + (int(b or 0) / 60) + (int(c or 0) / 3600)
    if b is None:
        return int(a) / 60
    if c is None:
        return int(a) / 60 + int(b) / 3600
    return int(a) + int(b) / 60 + int(c) / 3600


def provision(insp: Inspection, evidence: str) -> None:
    insp.add("compute.provision", evidence)


def gpus(insp: Inspection, gpu_type: str, count: int, hours: float | None, evidence: str) -> None:
    """``compute.gpu:<TYPE>`` with amounts; several requests of one type add up."""
    assumed = hours is None
    h = ASSUMED_HOURS if hours is None or hours <= 0 else hours
    name = f"compute.gpu:{gpu_type}"
    note = f"{count} x {gpu_type} for {h:g} h" + (" (duration not given: assumed)" if assumed else "")
    old = insp.caps.get(name)
    g, gh = float(count), count * h
    if old is not None:
        prev = dict(old.amounts)
        g, gh = g + prev.get("gpus", 0.0), gh + prev.get("gpu_hours", 0.0)
    insp.caps[name] = Capability(name, f"{note}: {evidence}"[:200], (("gpus", g), ("gpu_hours", gh)))


def _miner_image(insp: Inspection, image: str, evidence: str) -> None:
    base = image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0].lower()
    if any(m in base for m in MINERS) or "miner" in base:
        insp.add("crypto.mine", evidence)


def aws(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    texts = [w.text for w in args]
    evidence = " ".join([name, *texts])
    verbs = [t for t in texts if not t.startswith("-")]
    if not (
        {"run-instances", "request-spot-instances", "create-fleet", "run-job-flow"} & set(verbs)
        or ("create-training-job" in verbs or "create-cluster" in verbs or "create-nodegroup" in verbs)
    ):
        return set()
    provision(insp, evidence)
    p = parse_opts(
        args, fs("--instance-type", "--count", "--image-id", "--cli-input-json", "--instance-types")
    )
    opts = dict((o, v.text if v is not None else None) for o, v in p.opts)
    itype = opts.get("--instance-type") or opts.get("--instance-types") or ""
    count = _count(opts.get("--count"), 1)
    known = _AWS.get(itype)
    family = itype.split(".", 1)[0]
    if known is not None:
        gpus(insp, known[0], known[1] * count, None, evidence)
    elif family in _AWS_FAMILY:
        gpus(insp, _AWS_FAMILY[family], count, None, evidence)
    elif not itype or family[:1] in ("p", "g") or family.startswith(("trn", "inf", "dl")):
        gpus(insp, "UNKNOWN", ASSUMED_GPUS * count, None, f"instance type {itype or 'not given'}: {evidence}")
    return set()


def gcloud(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    texts = [w.text for w in args]
    evidence = " ".join([name, *texts])
    if "create" not in texts and "bulk" not in texts and "submit" not in texts:
        return set()
    provision(insp, evidence)
    p = parse_opts(args, fs("--accelerator", "--machine-type", "--count", "--zone", "--image", "--region"))
    count = 1
    found = False
    for o, v in p.opts:
        if v is None:
            continue
        if o == "--count":
            count = _count(v.text, 1)
    for o, v in p.opts:
        if v is None:
            continue
        if o == "--accelerator":
            fields = dict(f.partition("=")[::2] for f in v.text.split(","))
            gpus(
                insp,
                _gpu_type(fields.get("type", "")),
                _count(fields.get("count"), 1) * count,
                None,
                evidence,
            )
            found = True
        elif o == "--machine-type":
            m = _GCP_MACHINE_RE.match(v.text)
            if m is not None:
                kind = {"a2": "A100", "a3": "H100", "a4": "B200"}[m.group(1)]
                gpus(insp, kind, int(m.group(2)) * count, None, evidence)
                found = True
            elif v.text.startswith("g2-"):
                gpus(insp, "L4", _GCP_G2.get(v.text, 1) * count, None, evidence)
                found = True
    if not found and any(t.startswith("--accelerator") or "gpu" in t.lower() for t in texts):
        gpus(insp, "UNKNOWN", ASSUMED_GPUS * count, None, evidence)
    return set()


def az(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    texts = [w.text for w in args]
    evidence = " ".join([name, *texts])
    if "create" not in texts and "scale" not in texts:
        return set()
    provision(insp, evidence)
    p = parse_opts(args, fs("--size", "--count", "--node-vm-size", "--instance-count"))
    opts = dict((o, v.text if v is not None else None) for o, v in p.opts)
    size = (opts.get("--size") or opts.get("--node-vm-size") or "").lower()
    count = _count(opts.get("--count") or opts.get("--instance-count"), 1)
    if size in _AZURE:
        kind, n = _AZURE[size]
        gpus(insp, kind, n * count, None, evidence)
    elif size.startswith("standard_n"):
        gpus(insp, "UNKNOWN", ASSUMED_GPUS * count, None, evidence)
    return set()


_DOCKER_VALUES: Final = fs(
    "--gpus",
    "-e",
    "--env",
    "-v",
    "--volume",
    "--name",
    "-p",
    "--publish",
    "--network",
    "--net",
    "-w",
    "--workdir",
    "--entrypoint",
    "-u",
    "--user",
    "--runtime",
    "--device",
    "--pid",
    "--ipc",
    "--cap-add",
    "--mount",
    "--shm-size",
    "-m",
    "--memory",
    "--cpus",
    "--restart",
    "--label",
    "-l",
    "-h",
    "--hostname",
    "--platform",
    "--env-file",
    "--security-opt",
    "--ulimit",
    "--add-host",
    "--dns",
)


def docker(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """``docker run``: GPUs (``--gpus``, the nvidia runtime, CDI devices), miner images, host escapes."""
    texts = [w.text for w in args]
    evidence = " ".join([name, *texts])
    verb_at = next((i for i, t in enumerate(texts) if not t.startswith("-")), None)
    if verb_at is None:
        return set()
    verb = texts[verb_at]
    rest = args[verb_at + 1 :]
    if verb == "container" and rest:
        verb, rest = rest[0].text, rest[1:]
    if verb not in ("run", "create", "service", "stack", "compose"):
        return set()
    provision(insp, evidence)
    p = parse_opts(rest, _DOCKER_VALUES, max_pos=1)
    gpu_count: int | None = None
    for o, v in p.opts:
        val = v.text if v is not None else ""
        if o == "--gpus":
            spec = val.strip("'\"")
            if spec.startswith("device="):
                gpu_count = len(spec[7:].split(","))
            else:
                spec = spec.removeprefix("count=")
                gpu_count = ASSUMED_GPUS if spec in ("all", "-1") else _count(spec, ASSUMED_GPUS)
        elif o == "--runtime" and val == "nvidia":
            gpu_count = gpu_count or ASSUMED_GPUS
        elif o == "--device" and "gpu" in val.lower():
            gpu_count = gpu_count or ASSUMED_GPUS
        elif o in ("-e", "--env") and val.startswith("NVIDIA_VISIBLE_DEVICES=") and val[23:] != "void":
            gpu_count = gpu_count or ASSUMED_GPUS
        elif o == "--privileged" or (o in ("--pid", "--ipc", "--network", "--net") and val == "host"):
            insp.add("priv.escalate", evidence)
        elif o in ("-v", "--volume", "--mount") and re.match(r"(?:type=bind,\S*source=)?/(?::|,|$)", val):
            insp.add("priv.escalate", evidence)
        elif o == "--cap-add" and val.upper() in (
            "ALL",
            "SYS_ADMIN",
            "SYS_PTRACE",
            "NET_ADMIN",
            "SYS_MODULE",
        ):
            insp.add("priv.escalate", evidence)
    if p.pos:
        _miner_image(insp, p.pos[0].text, evidence)
        insp.scan(args[verb_at + 1 + p.index :])
    if gpu_count is not None:
        gpus(insp, "UNKNOWN", gpu_count, None, evidence)
    return set()


_KUBECTL_VERBS: Final = fs("apply", "create", "run", "replace", "patch", "scale", "set", "edit", "autoscale")


def kubectl(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """Workloads created or changed through kubectl; GPU limits read from literal manifests."""
    texts = [w.text for w in args]
    evidence = " ".join([name, *texts])
    verbs = [t for t in texts if not t.startswith("-")]
    if not verbs or verbs[0] not in _KUBECTL_VERBS:
        return set()
    provision(insp, evidence)
    ran: set[str] = set()
    for i, t in enumerate(texts):
        value = t.partition("=")[2] if "=" in t else (texts[i + 1] if i + 1 < len(texts) else "")
        key = t.partition("=")[0]
        if key in ("-f", "--filename") and value in ("-", "/dev/stdin"):
            ran.add(STDIN_MANIFEST)
        elif key in ("--limits", "--requests", "--overrides"):
            manifest(insp, value.replace(",", "\n"), evidence)
        elif key in ("--image",):
            _miner_image(insp, value, evidence)
    return ran


def manifest(insp: Inspection, text: str, evidence: str) -> None:
    """GPU limits in a Kubernetes manifest (YAML or JSON text): ``nvidia.com/gpu: 8``."""
    counts = [int(m.group(1)) for m in _K8S_GPU_RE.finditer(text)]
    if not counts:
        return
    kind = _K8S_TYPE_RE.search(text)
    replicas = re.search(r"(?:replicas|parallelism)\s*[:=]\s*(\d+)", text)
    total = max(counts) * (int(replicas.group(1)) if replicas else 1)
    if 0 < total <= MAX_GPUS:
        gpus(insp, _gpu_type(kind.group(1)) if kind else "UNKNOWN", total, None, f"{evidence}: {text}")
    for m in re.finditer(r"image\s*:\s*[\"']?(\S+?)[\"']?(?:\s|$)", text):
        _miner_image(insp, m.group(1), evidence)


_SLURM_VALUES: Final = fs(
    "--gres",
    "--gpus",
    "-G",
    "--gpus-per-node",
    "--gpus-per-task",
    "-N",
    "--nodes",
    "-n",
    "--ntasks",
    "-t",
    "--time",
    "-p",
    "--partition",
    "-J",
    "--job-name",
    "-o",
    "--output",
    "-e",
    "--error",
    "-c",
    "--cpus-per-task",
    "--mem",
    "-A",
    "--account",
    "--wrap",
)


def slurm(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """sbatch/srun/salloc: ``--gres=gpu[:type]:N``, ``--gpus``, ``--nodes`` and ``--time``."""
    evidence = " ".join([name, *(w.text for w in args)])
    provision(insp, evidence)
    p = parse_opts(args, _SLURM_VALUES, max_pos=0)
    nodes, hours = 1, None
    per_node: tuple[str, int] | None = None
    total: tuple[str, int] | None = None
    ran: set[str] = set()
    for o, v in p.opts:
        if v is None:
            continue
        t = v.text
        if o in ("-N", "--nodes"):
            nodes = _count(t.split("-")[-1], 1)
        elif o in ("-t", "--time"):
            hours = slurm_hours(t)
        elif o == "--gres":
            for spec in t.split(","):
                bits = spec.split(":")
                if bits[0] == "gpu":
                    n = _count(bits[-1], 1) if len(bits) > 1 else 1
                    per_node = (_gpu_type(bits[1]) if len(bits) == 3 else "UNKNOWN", n)
        elif o in ("--gpus", "-G"):
            bits = t.split(":")
            total = (_gpu_type(bits[0]) if len(bits) == 2 else "UNKNOWN", _count(bits[-1], ASSUMED_GPUS))
        elif o == "--gpus-per-node":
            bits = t.split(":")
            per_node = (_gpu_type(bits[0]) if len(bits) == 2 else "UNKNOWN", _count(bits[-1], ASSUMED_GPUS))
        elif o == "--wrap":
            ran |= insp.source(t, depth + 1)
    if total is not None:
        gpus(insp, total[0], total[1], hours, evidence)
    elif per_node is not None:
        gpus(insp, per_node[0], per_node[1] * nodes, hours, evidence)
    if name.lower() == "srun":
        rest = args[p.index :]
        if rest:
            ran |= insp.run(rest, depth + 1)
    return ran


def sysctl(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    if any("nr_hugepages" in w.text or "hugepages" in w.text for w in args):
        insp.add("crypto.mine", "hugepages tuning prepares RandomX mining: " + " ".join(w.text for w in args))
    return set()


def modprobe(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    if any(w.text == "msr" for w in args):
        insp.add("crypto.mine", "the msr module lets miners retune the CPU: modprobe msr")
    return set()


HANDLERS: Final[dict[str, Handler]] = {
    "aws": aws,
    "gcloud": gcloud,
    "az": az,
    **{n: docker for n in ("docker", "podman", "nerdctl")},
    **{n: kubectl for n in ("kubectl", "oc", "kubecolor")},
    **{n: slurm for n in ("sbatch", "srun", "salloc")},
    "sysctl": sysctl,
    "modprobe": modprobe,
    "insmod": modprobe,
}
