"""Compute provisioning through the shell: capabilities and the amounts budgets count."""

from __future__ import annotations

import pytest

from gatekeeper.inspectors import InspectContext
from gatekeeper.inspectors.shell import inspect_shell
from gatekeeper.inspectors.shell_compute import ASSUMED_HOURS, slurm_hours

CTX = InspectContext()


def amounts(cmd: str) -> dict[str, dict[str, float]]:
    return {c.name: dict(c.amounts) for c in inspect_shell(cmd, CTX) if c.name.startswith("compute.")}


@pytest.mark.parametrize(
    ("cmd", "cap", "gpus", "hours"),
    [
        ("aws ec2 run-instances --instance-type p4d.24xlarge", "compute.gpu:A100", 8, ASSUMED_HOURS),
        (
            "aws ec2 run-instances --instance-type=p5.48xlarge --count 4",
            "compute.gpu:H100",
            32,
            ASSUMED_HOURS,
        ),
        (
            "gcloud compute instances create x --accelerator type=nvidia-tesla-a100,count=8",
            "compute.gpu:A100",
            8,
            ASSUMED_HOURS,
        ),
        (
            "gcloud compute instances create x --machine-type a3-highgpu-8g",
            "compute.gpu:H100",
            8,
            ASSUMED_HOURS,
        ),
        ("docker run --gpus all pytorch/pytorch", "compute.gpu:UNKNOWN", 8, ASSUMED_HOURS),
        ("docker run --gpus 2 pytorch/pytorch", "compute.gpu:UNKNOWN", 2, ASSUMED_HOURS),
        ("docker run --gpus '\"device=0,1,2\"' img", "compute.gpu:UNKNOWN", 3, ASSUMED_HOURS),
        ("kubectl run t --image=x --limits=nvidia.com/gpu=4", "compute.gpu:UNKNOWN", 4, ASSUMED_HOURS),
        ("sbatch --gres=gpu:8 --time=72:00:00 train.sh", "compute.gpu:UNKNOWN", 8, 72),
        ("sbatch -N 2 --gres=gpu:a100:4 -t 1-00:00 x.sh", "compute.gpu:A100", 8, 24),
        ("srun --gpus=h100:2 --time=30 python t.py", "compute.gpu:H100", 2, 0.5),
        ("az vm create -n x --size Standard_ND96asr_v4", "compute.gpu:A100", 8, ASSUMED_HOURS),
    ],
)
def test_gpu_amounts(cmd: str, cap: str, gpus: int, hours: float) -> None:
    got = amounts(cmd)
    assert "compute.provision" in got
    assert got[cap] == {"gpus": gpus, "gpu_hours": pytest.approx(gpus * hours)}


def test_here_document_manifest() -> None:
    cmd = "kubectl apply -f - <<EOF\nspec:\n  resources:\n    limits:\n      nvidia.com/gpu: 8\nEOF"
    assert amounts(cmd)["compute.gpu:UNKNOWN"]["gpus"] == 8


def test_quoted_here_document_manifest_with_replicas() -> None:
    cmd = "kubectl apply -f - <<'EOF'\nreplicas: 3\nlimits: {nvidia.com/gpu: 2}\nEOF"
    assert amounts(cmd)["compute.gpu:UNKNOWN"]["gpus"] == 6


@pytest.mark.parametrize(
    "cmd",
    [
        "aws ec2 run-instances --instance-type c7i.large",
        "kubectl apply -f job.yaml",
        "docker run alpine true",
    ],
)
def test_provisioning_without_gpus(cmd: str) -> None:
    assert set(amounts(cmd)) == {"compute.provision"}


@pytest.mark.parametrize("cmd", ["aws s3 ls", "kubectl get pods", "docker ps", "gcloud config list"])
def test_reading_is_not_provisioning(cmd: str) -> None:
    assert amounts(cmd) == {}


@pytest.mark.parametrize(
    "cmd",
    [
        "docker run --gpus all xmrig/xmrig",
        "docker run ghcr.io/x/lolminer:1",
        "sysctl -w vm.nr_hugepages=1280",
        "modprobe msr",
        "echo 1280 > /proc/sys/vm/nr_hugepages",
    ],
)
def test_mining_preparation(cmd: str) -> None:
    assert "crypto.mine" in {c.name for c in inspect_shell(cmd, CTX)}


@pytest.mark.parametrize(
    ("text", "hours"),
    [("30", 0.5), ("90:00", 1.5), ("2:00:00", 2.0), ("1-01", 25.0), ("2-12:30", 60.5), ("1-00:00:00", 24.0)],
)
def test_slurm_durations(text: str, hours: float) -> None:
    assert slurm_hours(text) == pytest.approx(hours)
