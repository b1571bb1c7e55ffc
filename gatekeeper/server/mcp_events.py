"""SSE event ids belong to the principal and session they were relayed to.

A streamable-HTTP client resumes a stream with ``Last-Event-ID``; the upstream then replays the
events after that id, from whichever stream it belongs to. The SDK's event stores look the id
up across every session, so an id of another principal's stream (a sequential one is easy to
guess) would replay that principal's answers, and a replay of the caller's own ``tools/list``
on a ``GET`` would skip the list's filtering. So every ``id:`` the gate relays is tagged with an
HMAC of (upstream, principal, session, id), and a ``Last-Event-ID`` is forwarded only when its
tag is this caller's, for this session: anything else is refused before it reaches the upstream.

The key lives in the data folder (``keys/mcp-event-ids.key``, made on first run), so the
workers of one host share it; replicas that do not share the folder refuse each other's ids
(the client then sends its request again).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Final

import structlog

from ..models import Principal

log = structlog.get_logger("gatekeeper.mcp")

KEY_NAME: Final = "mcp-event-ids.key"
_TAG_BYTES: Final = 16
_MAX_ID_LINE: Final = 1024  # an id line longer than this is dropped, never relayed untagged
_ID: Final = b"id:"
_DROPPED: Final = b": dropped an over-long event id\n"
_START, _PASS, _DROP = 0, 1, 2  # where an IdRewriter is: at a line's start, passing one on, dropping one


def event_key(data_dir: Path) -> bytes:
    """The key tagging event ids, made (0600) in the data folder on first run. A folder we cannot
    write gets a key of this process only (resumption then works only on this process)."""
    path = data_dir / "keys" / KEY_NAME
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(32))
        key = path.read_bytes()
    except OSError as exc:
        log.warning("mcp_event_key_unavailable", path=str(path), error=exc.strerror)
        return secrets.token_bytes(32)
    if len(key) < 32:  # a concurrent first run is still writing it
        return secrets.token_bytes(32)
    return key


class EventIds:
    """Tags the event ids of one caller's streams; reads back the tag of a ``Last-Event-ID``."""

    __slots__ = ("_issuer", "_key", "subject", "upstream")

    def __init__(self, key: bytes, upstream: str, principal: Principal) -> None:
        self._key = key
        self.upstream = upstream
        self._issuer = principal.issuer
        self.subject = principal.subject

    def _mac(self, session: str | None, event_id: str) -> str:
        message = "\0".join((self.upstream, self._issuer, self.subject, session or "", event_id))
        digest = hmac.new(self._key, message.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:_TAG_BYTES]).decode().rstrip("=")

    def tag(self, session: str | None, event_id: str) -> str:
        return f"{self._mac(session, event_id)}.{event_id}"

    def untag(self, session: str | None, tagged: str) -> str | None:
        """The upstream's id behind ``tagged``, or None when it was not relayed to this caller in
        this session."""
        mac, dot, event_id = tagged.partition(".")
        if not dot or not event_id:
            return None
        return event_id if hmac.compare_digest(mac, self._mac(session, event_id)) else None

    def rewriter(self, session: str | None) -> IdRewriter:
        return IdRewriter(self, session)


class IdRewriter:
    """Rewrites the ``id:`` lines of an SSE byte stream as it passes through, chunk by chunk.
    Only the start of a line is held back (and an id line until its end); every other byte goes
    on at once. Lines end at ``\\n`` (a bare ``\\r`` ending leaves ids untagged: their resumption
    is then refused, never let through)."""

    __slots__ = ("_ids", "_mode", "_pending", "_session")

    def __init__(self, ids: EventIds, session: str | None) -> None:
        self._ids = ids
        self._session = session
        self._pending = b""  # the start of a line not yet known to be (or not be) an id line
        self._mode = _START

    def feed(self, chunk: bytes) -> bytes:
        out: list[bytes] = []
        pos, end = 0, len(chunk)
        while pos < end:
            newline = chunk.find(b"\n", pos)
            stop = end if newline == -1 else newline + 1
            piece, pos = chunk[pos:stop], stop
            if self._mode != _START:  # the rest of a line already passed on (or dropped)
                if self._mode == _PASS:
                    out.append(piece)
                if newline != -1:
                    self._mode = _START
                continue
            line, self._pending = self._pending + piece, b""
            if newline != -1:
                out.append(self._retag(line) if line.startswith(_ID) else line)
            elif line.startswith(_ID) or _ID.startswith(line):
                if len(line) <= _MAX_ID_LINE:
                    self._pending = line  # an id line (or maybe one): held until its end
                else:  # too long for an id: dropped, never relayed untagged
                    out.append(_DROPPED)
                    self._mode = _DROP
            else:
                out.append(line)
                self._mode = _PASS
        return b"".join(out)

    def _retag(self, line: bytes) -> bytes:
        if len(line) > _MAX_ID_LINE:
            return _DROPPED
        body = line[len(_ID) :].rstrip(b"\r\n")
        if body.startswith(b" "):
            body = body[1:]
        if not body:
            return line  # an empty id resets the client's last id: nothing to resume from
        event_id = body.decode("utf-8", "replace")
        return f"id: {self._ids.tag(self._session, event_id)}\n".encode()
