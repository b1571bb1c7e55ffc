"""bashlex, with the defect that let one command line exhaust Gatekeeper's memory fixed.

``bashlex.subst._paramexpand`` reads ``${`` up to the next ``}``; with none, ``str.find``'s
``-1`` sends its caller back to the start of the word, which it reads again, forever, adding a
node each time (``x '${:i,E'"'"'i'=`` took 4 GB in 44 s). Here a ``${`` without its ``}`` is
the parse error bash itself reports ("bad substitution"), which the inspector reads as doubt.
Import ``bashlex`` from this module.
"""

from __future__ import annotations

from typing import Any

import bashlex
import bashlex.errors
import bashlex.subst

__all__ = ["bashlex"]

_paramexpand: Any = bashlex.subst._paramexpand


def _checked_paramexpand(parserobj: Any, string: str, sindex: int) -> Any:
    if string[sindex + 1 : sindex + 2] == "{" and string.find("}", sindex + 2) < 0:
        raise bashlex.errors.ParsingError("bad substitution: no closing '}'", string, sindex)
    return _paramexpand(parserobj, string, sindex)


if getattr(bashlex.subst._paramexpand, "__name__", "") != "_checked_paramexpand":
    bashlex.subst._paramexpand = _checked_paramexpand
