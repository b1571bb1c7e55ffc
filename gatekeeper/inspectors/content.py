"""The content ``file.write`` puts in a file, for what only a miner's configuration holds.

Code written into the workspace is read by ``written_code`` and inherited by the command that
runs it. A configuration file is not run: it is read by a program whose own command line says
nothing (``./app -c config.json``), so the pool, the wallet and the protocol are in the file
alone. Its content is checked at the write: a stratum URL or method, a miner's JSON
configuration, a Monero wallet, a mining pool's name or xmrig's ``donate-level`` key is
``crypto.mine``. Nothing else in the content is judged here.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

from gatekeeper.inspectors.shell_programs import mining_text
from gatekeeper.inspectors.url import MINING_POOL_SUFFIXES
from gatekeeper.models import Capability

if TYPE_CHECKING:
    from gatekeeper.inspectors import InspectContext

__all__ = ["inspect_content"]

EVIDENCE_MAX: Final = 200
_POOL_NAME_RE: Final = re.compile(
    r"(?<![A-Za-z0-9.-])(?:[A-Za-z0-9-]+\.)*(?:"
    + "|".join(re.escape(s) for s in MINING_POOL_SUFFIXES)
    + r")(?![A-Za-z0-9-])",
    re.IGNORECASE,
)
# Keys of xmrig-style JSON configurations that no other program's configuration has.
_MINER_KEYS_RE: Final = re.compile(r'"(?:donate-level|donate-over-proxy|rig-id|1gb-pages|randomx)"\s*:')


def _excerpt(text: str, start: int) -> str:
    return text[max(0, start - 40) : start + 120].replace("\n", " ")[:EVIDENCE_MAX]


def content_capabilities(text: str) -> list[Capability]:
    """``crypto.mine`` when ``text`` holds what only a miner's setup does (see the module)."""
    for rx in (_POOL_NAME_RE, _MINER_KEYS_RE):
        m = rx.search(text)
        if m is not None:
            return [
                Capability("crypto.mine", f"written content configures a miner: {_excerpt(text, m.start())}")
            ]
    if mining_text(text):
        return [Capability("crypto.mine", f"written content configures a miner: {text[:160]}")]
    return []


def inspect_content(value: object, ctx: InspectContext) -> list[Capability]:
    """Inspector for the content of a written file."""
    if not isinstance(value, str):
        return [Capability("inspect.invalid", f"content must be a string, not {type(value).__name__}")]
    return content_capabilities(value)
