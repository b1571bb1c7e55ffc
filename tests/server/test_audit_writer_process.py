"""``audit.writer: process`` in a real ``gatekeeper serve``: issue 16's properties hold with the
writer in a process of its own.

- kill -9 of the writer process: calls are refused (503 ``audit_unavailable``, never forwarded),
  ``/readyz`` is unready and ``gatekeeper_audit_accepting`` is 0; once the writer is restarted,
  calls are accepted again and every answered call's record is stored;
- the chain it wrote carries signed checkpoints and ``gatekeeper audit verify`` checks them;
- a serving process killed with its writer stopped (records only in the journal) loses none of
  the calls it answered: the next start replays the journal.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from gatekeeper.audit.record import chain_hash

from ..processes import Served, start_served, stop_served, wait_ready

WRITER = "audit: {writer: process}\n"


def restart(served: Served, tmp_path: Path) -> Served:
    """``served``'s configuration (ports, so chain id) and data folder, served again."""
    env = {**os.environ, "GATEKEEPER_HOME": str(served.home)}
    out, err = tmp_path / "again.out", tmp_path / "again.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gatekeeper", "serve", "--config", str(tmp_path / "gatekeeper.yaml")],
            env=env,
            stdout=stdout,
            stderr=stderr,
            text=True,
        )
    again = Served(served.agent, served.operator, served.agent_port, served.home, proc)
    again.extra["out"], again.extra["err"] = out, err
    try:
        wait_ready(again.agent, proc)
    except BaseException:
        stop_served(again, sig=signal.SIGKILL)
        raise
    return again


def writer_pids(pid: int) -> list[int]:
    """The audit writer processes among ``pid``'s children."""
    with open(f"/proc/{pid}/task/{pid}/children") as fh:
        children = [int(p) for p in fh.read().split()]
    found = []
    for child in children:
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"gatekeeper.audit.writer_process" in cmdline:
            found.append(child)
    return found


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def invoke(served: Served, token: str, path: str = "README.md") -> tuple[int, dict[str, Any]]:
    body = json.dumps({"tool": "file.read", "arguments": {"path": path}}).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    request = urllib.request.Request(f"{served.agent}/v1/invoke", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def stored_ids(home: Path) -> list[str]:
    conn = sqlite3.connect(home / "audit.sqlite3")
    try:
        return [json.loads(body)["decision_id"] for (body,) in conn.execute("SELECT body FROM audit_records")]
    finally:
        conn.close()


def accepting(served: Served) -> str:
    _status, text = get(f"{served.agent}/metrics")
    return next(line for line in text.splitlines() if line.startswith("gatekeeper_audit_accepting "))


def until(predicate: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_a_killed_writer_process_refuses_calls_until_it_is_back_and_loses_nothing(tmp_path: Path) -> None:
    served = start_served(tmp_path, WRITER)
    try:
        token = served.token()
        answered = []
        for _ in range(20):
            status, body = invoke(served, token)
            assert status == 200, body
            answered.append(body["decision_id"])
        [writer] = writer_pids(served.proc.pid)
        os.kill(writer, signal.SIGKILL)
        # Refused from the moment the serving process sees it gone until its restart is ready.
        until(lambda: get(f"{served.agent}/readyz")[0] == 503, 5, "/readyz to turn unready")
        status, body = invoke(served, token)
        gone_at = time.monotonic()
        assert status == 503 and body["code"] == "audit_unavailable", body
        assert not body.get("forwarded"), body  # refused before the tool saw it
        assert accepting(served) == "gatekeeper_audit_accepting 0.0"
        _status, ready = get(f"{served.agent}/readyz")
        assert "audit writer process is not running" in ready, ready
        until(lambda: get(f"{served.agent}/readyz")[0] == 200, 30, "the writer to be restarted")
        assert time.monotonic() - gone_at < 30
        [restarted] = writer_pids(served.proc.pid)
        assert restarted != writer
        assert accepting(served) == "gatekeeper_audit_accepting 1.0"
        for _ in range(20):
            status, body = invoke(served, token)
            assert status == 200, body
            answered.append(body["decision_id"])
    finally:
        assert stop_served(served) == 0
    rows = stored_ids(served.home)
    assert set(answered) <= set(rows) and len(rows) == len(set(rows))
    assert [r for r in rows if r in set(answered)] == answered  # in the order they were answered
    assert any('"audit_writer_exited"' in line for line in served.log_lines())
    verify = served.cli("audit", "verify", check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "signed checkpoint(s) valid" in verify.stdout, verify.stdout


def test_the_writer_process_signs_checkpoints_that_audit_verify_checks(tmp_path: Path) -> None:
    served = start_served(tmp_path, WRITER)
    try:
        token = served.token()
        for _ in range(30):
            assert invoke(served, token)[0] == 200
    finally:
        assert stop_served(served) == 0
    verify = served.cli("audit", "verify", check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "signed checkpoint(s) valid" in verify.stdout, verify.stdout
    conn = sqlite3.connect(served.home / "audit.sqlite3")
    try:
        (signed,) = conn.execute("SELECT count(*) FROM audit_checkpoints").fetchone()
        assert signed >= 1
        # The last records rewritten consistently (every hash recomputed): only the writer
        # process's signed checkpoint can tell.
        rows = conn.execute("SELECT chain_id, seq, hash, body FROM audit_records ORDER BY seq").fetchall()
        prev = rows[-6][2]
        for chain, seq, _digest, body in rows[-5:]:
            data = json.loads(body)
            data["outcome"], data["code"], data["prev_hash"] = "denied", "policy_denied", prev
            text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            digest = chain_hash(prev, text)
            conn.execute(
                "UPDATE audit_records SET body = ?, prev_hash = ?, hash = ? WHERE chain_id = ? AND seq = ?",
                (text, prev, digest, chain, seq),
            )
            prev = digest
        conn.commit()
    finally:
        conn.close()
    tampered = served.cli("audit", "verify", check=False)
    assert tampered.returncode == 1, tampered.stdout + tampered.stderr
    assert "rewritten: its hash differs from the signed checkpoint" in tampered.stdout, tampered.stdout


def test_records_only_in_the_journal_when_the_server_dies_are_written_at_the_next_start(
    tmp_path: Path,
) -> None:
    served = start_served(tmp_path, WRITER)
    token = served.token()
    assert invoke(served, token)[0] == 200
    [writer] = writer_pids(served.proc.pid)
    os.kill(writer, signal.SIGSTOP)  # the store stops taking records; the journal still does
    answered = []
    for _ in range(15):
        status, body = invoke(served, token)
        assert status == 200, body  # durable: in the journal, on disk
        answered.append(body["decision_id"])
    assert not set(answered) & set(stored_ids(served.home))  # only in the journal
    os.kill(served.proc.pid, signal.SIGKILL)  # the whole service dies, the writer with it
    os.kill(writer, signal.SIGKILL)
    assert stop_served(served) == -signal.SIGKILL
    journal = list((served.home / "audit-journal").glob("*.jsonl"))
    assert any(p.stat().st_size for p in journal)
    again = restart(served, tmp_path)  # the same configuration: the same chain, and its journal
    try:
        status, body = invoke(again, token)
        assert status == 200, body
        answered.append(body["decision_id"])
    finally:
        assert stop_served(again) == 0
    rows = stored_ids(served.home)
    assert [r for r in rows if r in set(answered)] == answered  # all there, in order, once
    assert len(rows) == len(set(rows))
    verify = again.cli("audit", "verify", check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
