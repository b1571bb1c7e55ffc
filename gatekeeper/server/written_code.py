"""Two stages: code written by ``file.write`` is recorded with what it does, and a later command
that runs it is decided with that.

- ``record_written_code`` (where the call is forwarded): a write of code into the workspace
  (``inspectors/written_code``: ``.py``, shell scripts, Makefiles, ``package.json``, ``tox.ini``...)
  stores its capabilities under the caller's principal and the path, with the write's decision
  id. A file that is not code by name is recorded too, read as Python and as shell (``python3
  notes.txt`` runs it all the same). A shell command that writes
  a whole file from its own text (``cat > x.py <<'EOF'``) adds to the record, never replaces it:
  the branch that writes may not run. The record is written before the tool
  is called: a write whose record cannot be stored is refused (``written_code_unavailable``).
- ``inherit_written_code`` (right after the decision): a shell command that runs such files
  (``inspectors/shell_runs``: ``python3 x.py``, ``./x.sh``, ``make``, ``pytest``, ``npm test``,
  ``pip install .``...) gets their capabilities, and Python modules they import that the same
  principal wrote, and is decided again with them. The refusal or the hold names each file and
  the write that recorded it. The call's digest then also covers the files' recorded content, so
  an approval of one version never covers another.

Semantics, per principal: a command inherits what its own principal wrote. Another principal's
write neither taints nor clears it (nor shows up in its refusals). A file changed by other means
(a shell command, another principal, a checkout) keeps the record of the last ``file.write``:
the runner, which runs the file for real under the caller's principal, is the wall for what
argument inspection cannot see (docs/containment.md).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Iterable
from dataclasses import replace
from typing import Any

import structlog

from ..errors import WrittenCodeUnavailable
from ..inspectors.paths import CODE_ROOTS, normalize_path
from ..inspectors.shell import files_run, reading
from ..inspectors.shell_runs import split_tree
from ..inspectors.written_code import PROGRAM_PARTS, analyse_written, imported_paths, parts_of, shadows_stdlib
from ..manifest import WHOLE_ARGUMENTS, ToolManifest
from ..models import Capability, Outcome, Principal, ToolCall
from ..pipeline import Exchange
from ..runner.bound_files import bind
from ..written.records import LIMIT, WrittenCodeStore, WrittenRecord
from .state import GATE, WRITTEN_CODE

log = structlog.get_logger("gatekeeper.written_code")

_SHELL_INSPECTORS = frozenset({"shell", "shell.command"})
_FS_WRITE_INSPECTORS = frozenset({"fs.write"})
_WRITING_INSPECTORS = _SHELL_INSPECTORS | _FS_WRITE_INSPECTORS
MAX_IMPORT_DEPTH = 4


def _inspected_as(ex: Exchange, call: ToolCall, names: frozenset[str]) -> tuple[str, ...]:
    """The arguments the call's manifest hands to one of the inspectors ``names``."""
    policy_set = ex.app[GATE].policy_set
    manifest: ToolManifest | None = policy_set.manifests.get(call.tool) if policy_set is not None else None
    if manifest is None:
        return ()
    return manifest.inspected_by(names)


def _runs(ex: Exchange, call: ToolCall, commands: tuple[str, ...]) -> frozenset[str]:
    """The files the ``commands`` arguments (read by the shell inspectors) run."""
    workspace = ex.app[GATE].context.workspace
    out: set[str] = set()
    for argument in commands:
        value: Any = call.arguments if argument == WHOLE_ARGUMENTS else {"cmd": call.arguments.get(argument)}
        out |= files_run(value, workspace)
    return frozenset(out)


def inherit_written_code(ex: Exchange) -> Awaitable[None] | None:
    """Decide a command that runs written code with what that code does (a stage: awaitable
    only when there are records to read)."""
    store = ex.app.get(WRITTEN_CODE)
    call, decision, principal = ex.call, ex.decision, ex.principal
    if store is None or call is None or decision is None or principal is None:
        return None
    if decision.outcome is Outcome.DENY:
        return None  # nothing inherited can make it more refused
    commands = _inspected_as(ex, call, _SHELL_INSPECTORS)
    if not commands:  # a tool that runs no command (the manifest says so)
        return None
    runs = _runs(ex, call, commands)
    if not runs:
        return None
    return _inherit(ex, store, call, principal, runs)


async def _inherit(
    ex: Exchange, store: WrittenCodeStore, call: ToolCall, principal: Principal, runs: frozenset[str]
) -> None:
    try:
        records = await _records(store, principal.issuer, principal.subject, runs)
    except WrittenCodeUnavailable:
        raise
    except Exception as exc:
        raise _unavailable(
            ex,
            "written_code_unavailable",
            exc,
            "what the files this command runs were written to do could not "
            "be read; it was not run. Retry later",
        ) from None
    if not records:
        return
    inherited: dict[str, Capability] = {c.name: c for c in call.capabilities}
    for rec in records:
        for cap in rec.capabilities:
            if cap.name not in inherited:
                evidence = f"{rec.path} (written in decision {_ids(rec)}): {cap.evidence}"
                inherited[cap.name] = Capability(cap.name, evidence[:200], cap.amounts)
    if len(records) > LIMIT:
        inherited.setdefault(
            "shell.opaque", Capability("shell.opaque", f"runs more than {LIMIT} files written by file.write")
        )
    widened = replace(call, capabilities=tuple(sorted(inherited.values())))
    widened = bind(widened, {f"written:{rec.path}": rec.sha256 for rec in records})
    gate = ex.app[GATE]
    again = gate.decide(widened)
    if ex.shadow is not None and gate.policy_set is not None and gate.policy_set.shadow is not None:
        ex.shadow = gate.decide(widened, gate.policy_set.shadow)  # the shadow sees what was inherited too
    files = "; ".join(f"{rec.path} (written in decision {_ids(rec)})" for rec in records[:8])
    more = f" and {len(records) - 8} more" if len(records) > 8 else ""
    ex.call = widened
    ex.decision = replace(again, reason=f"{again.reason}; it runs code written by file.write: {files}{more}")


def _unavailable(
    ex: Exchange, event: str, exc: Exception, message: str, **fields: str
) -> WrittenCodeUnavailable:
    """The log line and the refusal for a written-code store that failed (fail closed)."""
    log.error(event, decision_id=ex.decision_id, error=type(exc).__name__, **fields)
    return WrittenCodeUnavailable(message)


def _ids(rec: WrittenRecord) -> str:
    return rec.decision_id.replace(",", ", ")


async def _records(
    store: WrittenCodeStore, issuer: str, subject: str, runs: frozenset[str]
) -> list[WrittenRecord]:
    """The principal's records of the files run, then of the workspace files they pull in
    (modules they import, files their command lines run: trees too)."""
    found: dict[str, WrittenRecord] = {}
    asked: set[str] = set()
    entries = set(runs)
    for _ in range(MAX_IMPORT_DEPTH + 1):
        entries -= asked
        if not entries:
            break
        asked |= entries
        # A tree entry is also a path: a file literally named /workspace/x/** is that file.
        paths = entries - set(found)
        trees = [t for t in map(split_tree, entries) if t is not None]
        for rec in await store.find(issuer, subject, paths, trees):
            found.setdefault(rec.path, rec)
        if len(found) > LIMIT:
            break
        entries = {p for rec in found.values() for p in _imported_paths(rec)}
    return sorted(found.values(), key=lambda r: r.path)


def _imported_paths(rec: WrittenRecord) -> Iterable[str]:
    return imported_paths(rec.path, rec.kind, rec.imports)


def record_written_code(ex: Exchange) -> Awaitable[None] | None:
    """Before a write is forwarded: record what the code it writes would do, should it be run.

    ``file.write`` (a tool whose manifest reads a path with ``fs.write``) with its ``content``;
    and a shell command that writes a whole file from its own line (``cat > x.py <<'EOF'``,
    ``echo ... > x.sh``): the text is in the call, so it is read the same way."""
    store = ex.app.get(WRITTEN_CODE)
    call, principal = ex.call, ex.principal
    if store is None or call is None or principal is None:
        return None
    if not _inspected_as(ex, call, _WRITING_INSPECTORS):  # neither writes files nor runs commands
        return None
    return _record_written(ex, store, call, principal)


async def _record_written(
    ex: Exchange, store: WrittenCodeStore, call: ToolCall, principal: Principal
) -> None:
    written_to = _inspected_as(ex, call, _FS_WRITE_INSPECTORS)
    commands = _inspected_as(ex, call, _SHELL_INSPECTORS)
    workspace = ex.app[GATE].context.workspace
    inside = (workspace.rstrip("/") + "/", *CODE_ROOTS)
    writes: list[tuple[str, str, bool]] = []  # (path, text, whether it surely replaces the file)
    copies: list[tuple[str, str]] = []  # (file, the workspace file copied, moved or linked into it)
    noted: list[tuple[str, tuple[Capability, ...]]] = []  # added to files' records (base64 -d x > y.py)
    content = call.arguments.get("content")
    if isinstance(content, str):
        for argument in written_to:
            raw = call.arguments.get(argument)
            path = normalize_path(raw, workspace) if isinstance(raw, str) else None
            if path is not None:
                writes.append((path, content, True))
    for argument in commands:
        value: Any = call.arguments if argument == WHOLE_ARGUMENTS else {"cmd": call.arguments.get(argument)}
        read = reading(value, workspace)
        if read is not None:  # a branch may never run (false && echo ... > x.py): it only adds
            writes += [(path, text, False) for path, text in read.written]
            copies += [(dest, src) for dest, src in read.copied if dest.startswith(inside)]
            noted += [(path, caps) for path, caps in read.noted if path.startswith(inside)]
    for path, text, replaces in writes:
        if path.startswith(inside):
            await _record(store, ex, principal.issuer, principal.subject, path, text, replaces=replaces)
    if copies:
        await _record_copies(store, ex, principal.issuer, principal.subject, copies)
    for path, caps in noted:
        await _record_noted(store, ex, principal.issuer, principal.subject, path, caps)


async def _record_noted(
    store: WrittenCodeStore, ex: Exchange, issuer: str, subject: str, path: str, caps: tuple[Capability, ...]
) -> None:
    """``base64 -d x > y.py``, ``python3 gen.py > y.sh`` (doubt: text nobody has read), ``sed -i
    '1a os.system(...)' y.py`` (what the added text does): added to the file's record, so a later
    run of ``y`` inherits it (a branch may not run; a later ``file.write`` of the file replaces it)."""
    try:
        digest = hashlib.sha256(f"noted:{ex.decision_id}:{path}".encode()).hexdigest()
        await store.merge(
            WrittenRecord(issuer, subject, path, "text", digest, caps, (), ex.decision_id, time.time())
        )
    except Exception as exc:
        raise _unavailable(
            ex,
            "written_code_unrecorded",
            exc,
            f"what the text this command writes into {path} does could not be recorded, "
            "so the command was refused. Retry later",
            path=path,
        ) from None


async def _record_copies(
    store: WrittenCodeStore, ex: Exchange, issuer: str, subject: str, copies: list[tuple[str, str]]
) -> None:
    """``cp x.py y.py`` (``mv``, ``ln``, ``cat x.py > y.py``): what was recorded about ``x.py`` is
    added to ``y.py``'s record, so running ``y.py`` later inherits it. Added, never replacing: the
    copy may not happen (a branch), and the file may hold more than one copy's text."""
    try:
        # the file's record, and those of its parts every file has (#awk, #sed: awk -f y runs y#awk)
        marks = ("", *(suffix for suffix, _ in PROGRAM_PARTS))
        sources = {src + mark for _, src in copies for mark in marks}
        found = {rec.path: rec for rec in await store.find(issuer, subject, sources, ())}
        for dest, src in copies:
            for mark in marks:
                rec = found.get(src + mark)
                if rec is None or dest == src:
                    continue
                ids = f"{rec.decision_id},{ex.decision_id}"
                copy = replace(rec, path=dest + mark, decision_id=ids, written_at=time.time())
                await store.merge(copy)
                if not mark and shadows_stdlib(dest):  # cp x.py string.py: it runs in the module's place
                    await store.merge(replace(copy, path=dest + "#shadow", kind="shadow"))
    except Exception as exc:
        raise _unavailable(
            ex,
            "written_code_unrecorded",
            exc,
            "what the files this command copies were written to do could "
            "not be recorded, so it was refused. Retry later",
        ) from None


async def _record(
    store: WrittenCodeStore, ex: Exchange, issuer: str, subject: str, path: str, text: str, *, replaces: bool
) -> None:
    """The record of the file, and of each of its parts (a Go file's //go:generate lines): a
    write that replaces the file removes the parts it no longer has."""
    analysis = analyse_written(path, text)
    try:
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        now = time.time()
        for where, code in ((path, analysis), *analysis.parts):
            record = WrittenRecord(
                issuer,
                subject,
                where,
                code.kind,
                digest,
                code.capabilities,
                code.imports,
                ex.decision_id,
                now,
            )
            await (store.put(record) if replaces else store.merge(record))
        if replaces:
            had = {where for where, _ in analysis.parts}
            for suffix, _ in parts_of(analysis.kind):
                if path + suffix not in had:
                    await store.forget(issuer, subject, path + suffix)
    except Exception as exc:
        raise _unavailable(
            ex,
            "written_code_unrecorded",
            exc,
            f"what the code written to {path} does could not be recorded, "
            "so the write was refused. Retry later",
            path=path,
        ) from None
    log.info(
        "written_code_recorded",
        decision_id=ex.decision_id,
        path=path,
        kind=analysis.kind,
        capabilities=[c.name for c in analysis.capabilities],
    )
