"""``gatekeeper audit verify|tail|export``: check, follow and export the audit trail.

The store is the configured one (``--config``, else the embedded defaults): ``approvals.store``
picks SQLite (``audit.sqlite3`` in the data folder) or PostgreSQL (table ``audit_records`` in
schema ``approvals.postgres_schema``).

- ``verify [--chain ID] [--expect-head SEQ:HASH] [--file F]`` — recompute every hash and link of
  every chain (or one), or of an exported file. Exit 0 when intact (the head of each chain is
  printed as ``SEQ:HASH``: keep it somewhere safe as the next run's anchor), 1 when tampered,
  each finding printed as ``<file-or-table>: seq N: <kind>: <what>``. ``--expect-head`` (needs a
  single chain) also catches a truncated or consistently rewritten tail, which a chain alone
  cannot show. Exit 2 for bad usage, 3 when the store cannot be read.
- ``tail [-n N] [--follow] [--chain ID] [--json]`` — the last N records (all chains, by time),
  then, with ``--follow``, new ones as they are written.
- ``export --since TIME --until TIME --out FILE [--chain ID]`` — JSON lines, one record per line.
  A time is ISO 8601 (UTC when it has no zone), epoch seconds, ``now``, or a time ago (``7d``,
  ``24h``). Exit 4, saying what the trail does hold, when the range holds no record.

Agent-controlled text (principal, tool, reason) is printed with control characters escaped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sqlite3
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from ..audit.checkpoints import default_key_path, load_public_keys, public_key_path
from ..audit.export import JsonlReader, export_jsonl
from ..audit.log import make_sink
from ..audit.record import AuditRecord, AuditSink
from ..audit.sink_sqlite import SqliteAuditSink
from ..audit.verify import parse_anchor, verify
from ..config import Config, load_config
from .approvals import safe

EXIT_TAMPERED = 1
EXIT_USAGE = 2
EXIT_STORE = 3
EXIT_EMPTY = 4  # export: the range holds no record
_STORE_ERRORS = (OSError, sqlite3.Error, asyncpg.PostgresError, asyncpg.InterfaceError)


def register(sub: Any) -> None:
    p = sub.add_parser("audit", help="verify, follow and export the audit trail")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    v = verbs.add_parser("verify", help="check every record's hash and link; exit 1 if tampered")
    v.add_argument("--chain", default=None, help="only this chain (replica id)")
    v.add_argument(
        "--expect-head",
        default=None,
        metavar="SEQ:HASH",
        help="anchor from an earlier run or an audit_checkpoint log line: also catches a cut tail",
    )
    v.add_argument("--file", type=Path, default=None, help="verify an exported JSON-lines file instead")
    v.add_argument(
        "--checkpoint-key",
        type=Path,
        action="append",
        default=None,
        metavar="PUB.pem",
        help="trusted public key of the checkpoint signer (repeatable; default: the one in the data folder)",
    )
    v.set_defaults(run=run_verify)

    t = verbs.add_parser("tail", help="print the last records, and follow new ones")
    t.add_argument("-n", type=int, default=10, help="how many (default 10)")
    t.add_argument("--follow", "-f", action="store_true", help="keep printing new records until Ctrl-C")
    t.add_argument("--chain", default=None, help="only this chain (replica id)")
    t.add_argument("--json", action="store_true", help="one JSON record per line")
    t.add_argument("--interval", type=float, default=0.5, help=argparse.SUPPRESS)
    t.set_defaults(run=run_tail)

    e = verbs.add_parser("export", help="write a time range as JSON lines (for a SIEM or replay)")
    e.add_argument(
        "--since",
        required=True,
        help="ISO time (UTC unless it says otherwise), now, or a time ago: 7d, 24h, 30m",
    )
    e.add_argument("--until", required=True, help="the same forms, exclusive (e.g. now)")
    e.add_argument("--out", type=Path, required=True, help="file to write")
    e.add_argument("--chain", default=None, help="only this chain (replica id)")
    e.set_defaults(run=run_export)

    for verb in (v, t, e):
        verb.add_argument("--config", type=Path, default=None, help="path to gatekeeper.yaml")


def sink_for(config: Config) -> AuditSink:
    return make_sink(config.approvals.store, config.data_dir, schema=config.approvals.postgres_schema)


_AGO = re.compile(r"-?(\d{1,6})([smhdw])(?: ago)?")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_time(text: str, *, now: float | None = None) -> float:
    """ISO 8601 (``Z`` or an offset; UTC when none), epoch seconds, ``now``, or a time ago as
    ``docker logs --since`` takes it: ``7d``, ``24h``, ``30m`` (``s``, ``m``, ``h``, ``d``, ``w``;
    ``7d ago`` and ``-7d`` read the same)."""
    text = text.strip()
    current = time.time() if now is None else now
    if text == "now":
        return current
    if match := _AGO.fullmatch(text):
        return current - int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _err(message: str, code: int) -> int:
    print(f"gatekeeper: {message}", file=sys.stderr)
    return code


# -- verify ---------------------------------------------------------------------------------------


def run_verify(args: argparse.Namespace) -> int:
    anchor = None
    if args.expect_head:
        try:
            anchor = parse_anchor(args.expect_head)
        except ValueError as exc:
            return _err(str(exc), EXIT_USAGE)
    try:
        return asyncio.run(_verify(args, anchor))
    except _STORE_ERRORS as exc:
        return _err(f"audit store unreadable: {exc}", EXIT_STORE)


async def _verify(args: argparse.Namespace, anchor: tuple[int, str] | None) -> int:
    if args.file is not None:
        reader = JsonlReader(args.file)
        if not reader.path.exists():
            return _err(f"{reader.path}: no such file", EXIT_USAGE)
        try:
            return await _report(reader, reader.location, args.chain, anchor, partial=True)
        except ValueError as exc:
            print(str(exc))
            return EXIT_TAMPERED
    config = load_config(args.config, offline=True, needed=("approvals.store",))
    sink = sink_for(config)
    if isinstance(sink, SqliteAuditSink) and not sink.path.exists():
        print(f"{sink.location}: no audit trail here (missing file)")
        return EXIT_TAMPERED
    key_files = args.checkpoint_key or [public_key_path(_checkpoint_key_path(config))]
    try:
        keys = load_public_keys([p for p in key_files if args.checkpoint_key or p.exists()])
    except (OSError, ValueError) as exc:
        return _err(f"checkpoint key: {exc}", EXIT_USAGE)
    if not keys:
        print(f"{sink.location}: no checkpoint key found ({key_files[0]}): signatures not checked")
    await sink.open()
    try:
        if anchor is not None and args.chain is None and len(await sink.chains()) > 1:
            return _err("--expect-head needs one chain: name it with --chain", EXIT_USAGE)
        return await _report(sink, sink.location, args.chain, anchor, partial=False, keys=keys or None)
    finally:
        await sink.close()


def _checkpoint_key_path(config: Config) -> Path:
    key = config.audit.checkpoint_key
    return Path(key) if key else default_key_path(config.data_dir)


async def _report(
    reader: Any,
    where: str,
    chain: str | None,
    anchor: tuple[int, str] | None,
    *,
    partial: bool,
    keys: dict[str, Any] | None = None,
) -> int:
    report = await verify(reader, chain_id=chain, expect_head=anchor, partial=partial, checkpoint_keys=keys)
    for finding in report.findings:
        print(f"{where}: {finding}")
    if report.truncated_findings:
        print(f"{where}: … and {report.truncated_findings} more findings")
    for summary in report.chains.values():
        name = summary.chain_id or "-"
        print(
            f"{where}: chain {name}: {summary.records} records, seq {summary.first_seq}..{summary.head_seq}, "
            f"head {summary.head_seq}:{summary.head_hash}"
        )
        if keys is not None:
            print(
                f"{where}: chain {name}: {summary.checkpoints} signed checkpoint(s) valid "
                f"(key {', '.join(sorted(keys))}), the newest at seq {summary.signed_seq}"
            )
    if report.ok:
        print(f"{where}: ok, {report.records} records verified ({report.rate:,.0f}/s)")
        return 0
    print(f"{where}: TAMPERED: {len(report.findings) + report.truncated_findings} finding(s)")
    return EXIT_TAMPERED


# -- tail -----------------------------------------------------------------------------------------


def format_record(record: AuditRecord) -> str:
    when = datetime.fromtimestamp(record.time, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"
    parts = [
        when,
        f"{record.chain_id or '-'}#{record.seq}",
        record.outcome,
        safe(record.principal or "-"),
        safe(record.tool or record.entry),
    ]
    if record.capabilities:
        parts.append("[" + ",".join(safe(c) for c in record.capabilities) + "]")
    if record.rule:
        parts.append(f"rule={safe(record.rule)}")
    if record.operator:
        parts.append(f"by={safe(record.operator)}")
    if record.reason:
        parts.append(f"— {safe(record.reason)}")
    return "  ".join(parts)


def _print_record(record: AuditRecord, as_json: bool) -> None:
    if as_json:
        print(json.dumps(record.to_json(), ensure_ascii=False, separators=(",", ":")))
    else:
        print(format_record(record))


def run_tail(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_tail(args))
    except _STORE_ERRORS as exc:
        return _err(f"audit store unreadable: {exc}", EXIT_STORE)
    except KeyboardInterrupt:
        return 0


async def _tail(args: argparse.Namespace, *, max_polls: int | None = None) -> int:
    sink = sink_for(load_config(args.config, offline=True, needed=("approvals.store",)))
    await sink.open()
    try:
        chains = [args.chain] if args.chain else await sink.chains()
        last: dict[str, int] = {}
        recent: list[AuditRecord] = []
        for chain in chains:
            head, _ = await sink.head(chain)
            last[chain] = head
            recent.extend([r async for r in sink.records(chain_id=chain, after_seq=max(0, head - args.n))])
        recent.sort(key=lambda r: (r.time, r.chain_id or "", r.seq))
        for record in recent[-args.n :] if args.n > 0 else []:
            _print_record(record, args.json)
        sys.stdout.flush()
        polls = 0
        while args.follow and (max_polls is None or polls < max_polls):
            polls += 1
            await asyncio.sleep(args.interval)
            if not args.chain:
                for chain in await sink.chains():
                    last.setdefault(chain, 0)
            fresh: list[AuditRecord] = []
            for chain, seq in last.items():
                fresh.extend([r async for r in sink.records(chain_id=chain, after_seq=seq)])
            fresh.sort(key=lambda r: (r.time, r.chain_id or "", r.seq))
            for record in fresh:
                last[record.chain_id or ""] = max(last.get(record.chain_id or "", 0), record.seq)
                _print_record(record, args.json)
            sys.stdout.flush()
        return 0
    finally:
        await sink.close()


# -- export ---------------------------------------------------------------------------------------


def run_export(args: argparse.Namespace) -> int:
    try:
        since, until = parse_time(args.since), parse_time(args.until)
    except ValueError as exc:
        return _err(f"bad time: {exc}", EXIT_USAGE)
    if until <= since:
        return _err("--until must be after --since", EXIT_USAGE)
    try:
        return asyncio.run(_export(args, since, until))
    except _STORE_ERRORS as exc:
        return _err(f"audit store unreadable: {exc}", EXIT_STORE)


async def _export(args: argparse.Namespace, since: float, until: float) -> int:
    sink = sink_for(load_config(args.config, offline=True, needed=("approvals.store",)))
    if isinstance(sink, SqliteAuditSink) and not sink.path.exists():
        return _err(f"{sink.location}: no audit trail here (missing file); nothing exported", EXIT_EMPTY)
    await sink.open()
    try:
        started = time.perf_counter()
        count = await export_jsonl(sink, args.out, since=since, until=until, chain_id=args.chain)
        held = await _held_range(sink, args.chain) if count == 0 else None
    finally:
        await sink.close()
    if count == 0:
        window = f"from {_iso(since)} until {_iso(until)}"
        trail = (
            f"the trail holds records from {_iso(held[0])} to {_iso(held[1])}"
            if held
            else "the trail is empty"
        )
        return _err(f"no audit records {window} ({trail}); {args.out} is empty", EXIT_EMPTY)
    print(f"{args.out}: {count} records exported in {time.perf_counter() - started:.2f}s")
    return 0


async def _held_range(sink: AuditSink, chain: str | None) -> tuple[float, float] | None:
    """The times of the oldest and the newest record (of ``chain``, or of any), None when none."""
    first: float | None = None
    last: float | None = None
    for name in [chain] if chain else await sink.chains():
        head, _ = await sink.head(name)
        if head == 0:
            continue
        async for record in sink.records(chain_id=name, after_seq=0):
            first = record.time if first is None else min(first, record.time)
            break
        async for record in sink.records(chain_id=name, after_seq=head - 1):
            last = record.time if last is None else max(last, record.time)
    return (first, last) if first is not None and last is not None else None


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
