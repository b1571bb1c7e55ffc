"""Run every benchmark in ``bench/`` with short durations and print all their tables.

    python3 bench/run_all.py            # about eight minutes
    python3 bench/run_all.py --quick    # about two: fewer samples, no 100,000-rule anchors
    python3 bench/run_all.py --only decision,gate

Each benchmark runs in its own process, one after the other (they would disturb each other's
timings otherwise), with a time limit. Its tables go to stdout as it prints them; progress lines
go to stderr. PostgreSQL rows run only when something accepts connections on 127.0.0.1:5432.
A benchmark that fails is reported and the others still run; one that is not in ``bench/`` is
listed as absent. Loopback only.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Bench:
    key: str
    script: str
    args: tuple[str, ...]
    quick_args: tuple[str, ...]
    timeout_s: float
    needs_postgres_flag: bool = False


BENCHES = (
    Bench("decision", "decision_bench.py", (), ("--quick",), 900),
    Bench(
        "gate",
        "gate_baseline.py",
        ("--duration", "2", "--rounds", "3", "--warmup", "0.5"),
        ("--duration", "1.5", "--rounds", "2", "--warmup", "0.5"),
        600,
    ),
    Bench(
        "open",
        "open_loop.py",
        (),  # 500 calls/s, 3 rounds x 3 s per target, and the body-size rows
        ("--duration", "2", "--rounds", "2", "--no-scale"),
        600,
    ),
    Bench("jwks", "jwks_bench.py", (), ("--quick",), 300),
    Bench("inspectors", "inspectors_bench.py", ("--rounds", "100", "--worst-rounds", "2"), ("--quick",), 600),
    Bench(
        "approvals",
        "approvals_latency.py",
        ("--rounds", "20", "--pending", "2000", "--requests", "10"),
        ("--rounds", "10", "--pending", "1000", "--requests", "5"),
        600,
        needs_postgres_flag=True,
    ),
    Bench(
        "audit",
        "audit_bench.py",
        ("--append-records", "50000", "--writer-records", "20000", "--verify-records", "100000"),
        ("--append-records", "20000", "--writer-records", "10000", "--verify-records", "20000"),
        600,
        needs_postgres_flag=True,
    ),
)


def postgres_listening(host: str = "127.0.0.1", port: int = 5432) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--only", default="", help="comma-separated: " + ",".join(b.key for b in BENCHES))
    args = parser.parse_args()
    wanted = {k for k in args.only.split(",") if k} or {b.key for b in BENCHES}
    postgres = postgres_listening()
    failures: list[str] = []
    summary: list[tuple[str, str, float]] = []
    for bench in BENCHES:
        if bench.key not in wanted:
            continue
        path = HERE / bench.script
        if not path.exists():
            summary.append((bench.key, "absent", 0.0))
            continue
        cmd = [sys.executable, str(path), *(bench.quick_args if args.quick else bench.args)]
        if bench.needs_postgres_flag and not postgres:
            cmd.append("--no-postgres")
        print(f"\n{'=' * 100}\n# {bench.key}: {' '.join(cmd[1:])}\n{'=' * 100}", flush=True)
        start = time.monotonic()
        try:
            done = subprocess.run(cmd, cwd=HERE.parent, timeout=bench.timeout_s, check=False)
            status = "ok" if done.returncode == 0 else f"exit {done.returncode}"
        except subprocess.TimeoutExpired:
            status = f"timed out after {bench.timeout_s:.0f} s"
        elapsed = time.monotonic() - start
        if status != "ok":
            failures.append(bench.key)
        summary.append((bench.key, status, elapsed))
    print(f"\n{'=' * 100}\n# run_all summary (PostgreSQL {'on' if postgres else 'off'})")
    for key, status, elapsed in summary:
        print(f"{key:<12} {status:<28} {elapsed:>7.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
