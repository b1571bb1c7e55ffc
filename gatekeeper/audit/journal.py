"""The audit journal: each record's fields in a local file before its call is answered.

The serving process appends each record, already redacted (the journal never holds a secret the
store would not), with one ``write(2)`` to the current segment file; that is all an audit record
costs it. What the kernel has taken survives the process (not a power loss: the store's commit is
the durable copy). The audit writer process (``writer_process``) tails the segments in order,
chains and commits them, and reports how far it got; it also takes over whatever a previous
process left, skipping what the store already holds.

Segments are ``CHAIN.sK.N.jsonl`` (N counting up) in slot K: a serving process claims the first
slot whose lock it can take (``fcntl.flock``; its writer process inherits the lock, so a writer
that outlives a killed server keeps its slot until it has drained it). One process per chain, the
normal case, always has slot 0, and finds there whatever its predecessor left; two live processes
that share a chain id (two replicas on one data folder) get a journal each.

Only the serving process appends, and only to the newest segment; once the writer has committed
the whole of a segment and a newer one exists, the writer deletes it. The serving process starts
a new segment when the writer has caught up and the current one has grown past ``ROTATE_BYTES``,
so the files stay small under any load.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

ROTATE_BYTES = 4 * 1024 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def journal_stem(chain_id: str) -> str:
    return _UNSAFE.sub("_", chain_id)


def segments(folder: Path, stem: str) -> list[tuple[int, Path]]:
    """The chain's segment files, oldest first."""
    found: list[tuple[int, Path]] = []
    for path in folder.glob(f"{stem}.*.jsonl"):
        number = path.name[len(stem) + 1 : -len(".jsonl")]
        if number.isdigit():
            found.append((int(number), path))
    return sorted(found)


def _plain(value: Any) -> Any:
    """JSON for what orjson does not know, as ``Redactor.sanitize`` would make it."""
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    return str(value)


class AuditJournal:
    """The serving process's end: appends, rotates, and maps the writer's reports to counts."""

    def __init__(self, folder: Path, chain_id: str, view: Callable[[dict[str, Any]], Any]) -> None:
        self.folder = folder
        self.chain_stem = journal_stem(chain_id)
        self.stem = ""  # with the slot, once claimed
        self.lock_fd = -1
        self.view = view
        self.count = 0  # records this process journaled
        self.segment = -1
        self._fd = -1
        self._size = 0
        self._starts: dict[int, int] = {}  # our segment -> how many records came before it
        self.broken = False  # a write failed: the next one starts a new segment

    @property
    def fd(self) -> int:
        """The current segment's file descriptor (to ``fdatasync``)."""
        return self._fd

    def open(self) -> None:
        """Claim a slot; start a segment after every existing one (a previous process's)."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.folder, 0o700)  # also when an earlier run made it otherwise
        if self.lock_fd < 0:
            self._claim_slot()
        existing = segments(self.folder, self.stem)
        self._new_segment(existing[-1][0] + 1 if existing else 0)

    def _claim_slot(self) -> None:
        for slot in range(1024):
            fd = os.open(self.folder / f"{self.chain_stem}.s{slot}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            os.set_inheritable(fd, False)
            self.lock_fd, self.stem = fd, f"{self.chain_stem}.s{slot}"
            return
        raise OSError(f"audit journal {self.folder}: every slot of chain {self.chain_stem} is taken")

    def _new_segment(self, number: int) -> None:
        path = self.folder / f"{self.stem}.{number}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o600)
        if self._fd >= 0:
            os.close(self._fd)
        self._fd, self.segment, self._size = fd, number, 0
        self._starts[number] = self.count

    def write(self, fields: dict[str, Any]) -> None:
        """One record, redacted, in one ``write(2)``. Raises OSError when the disk refuses; the
        segment may then end in a torn line, so the next write goes to a new one (``mend``)."""
        if self.broken:
            self.mend()
        line = orjson.dumps(self.view(fields), default=_plain, option=orjson.OPT_NON_STR_KEYS) + b"\n"
        try:
            written = os.write(self._fd, line)
        except OSError:
            self.broken = True
            raise
        if written != len(line):  # a short write to a regular file: the disk is full
            self.broken = True
            raise OSError(f"audit journal {self.folder}: short write ({written} of {len(line)} bytes)")
        self._size += written
        self.count += 1

    def mend(self) -> None:
        """After a failed write: continue in a new segment (the writer process skips the torn
        line the old one may end with, logging it). Raises OSError while the disk refuses. The old
        segment is synced first: answers waiting to be durable then sync only the newest one."""
        os.fdatasync(self._fd)
        self._new_segment(self.segment + 1)
        self.broken = False

    def committed(self, segment: int, lines: int) -> int | None:
        """The writer has committed ``lines`` lines of ``segment`` and everything before it: how
        many of this process's records that is (None for a previous process's segment)."""
        start = self._starts.get(segment)
        if start is None:
            return None
        done = start + lines
        for number in [n for n in self._starts if n < segment]:
            del self._starts[number]  # the writer deletes those files
        if done >= self.count and segment == self.segment and self._size >= ROTATE_BYTES and not self.broken:
            try:
                self._new_segment(self.segment + 1)
            except OSError:  # a full disk: keep appending to this one; rotation is tried again later
                pass
        return done

    def close(self, *, everything_committed: bool) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            if everything_committed:
                for _number, path in segments(self.folder, self.stem):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
        if self.lock_fd >= 0:
            os.close(self.lock_fd)
            self.lock_fd = -1
