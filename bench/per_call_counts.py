"""Python function calls per call, counted: what one MCP ``tools/call`` (or ``/v1/invoke``) costs
in the server process of this tree and of other checkouts, function by function.

    python3 bench/per_call_counts.py [--tree DIR ...] [--target mcp|invoke] [--calls N] [--top K]

Each tree's ``bench/serve_stack.py`` runs under cProfile (the demo upstream in its own process)
twice, for ``N/10`` and for ``N + N/10`` calls on one connection; the per-call count of each
function is the difference divided by ``N``, so start-up and the handshake drop out. Counts are
deterministic where timings are not: the table says how many Python functions a call runs
(without asyncio's loop functions and C built-ins, whose counts follow packet timing), then
the functions whose counts differ most between the first tree and each other one. Audit
durable answers are off on every tree that has them (``--no-durable-answers``), as in
``gate_baseline.py --baseline-tree``. All traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import pstats
import re
import sys
import tempfile
from pathlib import Path

import aiohttp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.gate_baseline import (
    Target,
    http_targets,
    make_http_call,
    make_mcp_call,
    mcp_targets,
    start_servers,
    stop_servers,
)

_LOOP = re.compile(r"(?:^|/)asyncio/|(?:^|/)selectors\.py")
_PREFIX = re.compile(r"^.*?/(?:site-packages|python3\.\d+|gatekeeper(?=/))/")


def _name(key: tuple[str, int, str], tree: Path) -> str:
    """``file(function)`` with the tree's or the interpreter's prefix cut off, line numbers out."""
    path, _line, func = key
    if path.startswith(str(tree)):
        path = path[len(str(tree)) + 1 :]
    else:
        path = _PREFIX.sub("", path)
    return f"{path}({func})"


async def _drive(tree: Path, calls: int, out: Path, target: str) -> None:
    serve = (tree / "bench" / "serve_stack.py").read_text()
    extra = ["--upstream-process", *(["--no-durable-answers"] if "--no-durable-answers" in serve else [])]
    proc, info = start_servers(300, out, extra, tree=tree)
    try:
        chosen: Target = mcp_targets(info)[-1] if target == "mcp" else http_targets(info)[-1]
        async with aiohttp.ClientSession() as session:
            call = await (make_mcp_call if target == "mcp" else make_http_call)(session, chosen)
            for _ in range(calls):
                if not await call():
                    raise RuntimeError(f"{chosen.name}: a call did not succeed; refusing to count it")
    finally:
        stop_servers(proc)


def _counts(path: Path, tree: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in pstats.Stats(str(path)).stats.items():  # type: ignore[attr-defined]  # .stats is pstats' documented table, missing from typeshed
        name = _name(key, tree) if not key[0].startswith("~") else f"~{key[2]}"
        out[name] = out.get(name, 0.0) + value[1]
    return out


async def per_call(tree: Path, target: str, calls: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="per-call-") as tmp:
        small, large = Path(tmp) / "small.prof", Path(tmp) / "large.prof"
        await _drive(tree, calls // 10, small, target)
        await _drive(tree, calls + calls // 10, large, target)
        before, after = _counts(small, tree), _counts(large, tree)
    return {k: (v - before.get(k, 0.0)) / calls for k, v in after.items() if v != before.get(k, 0.0)}


def _python(counts: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in counts.items() if not k.startswith("~") and not _LOOP.search(k)}


async def amain(args: argparse.Namespace) -> None:
    trees = [HERE.parent, *(t.resolve() for t in args.tree)]
    results = [await per_call(tree, args.target, args.calls) for tree in trees]
    print(f"# per {args.target} call, {args.calls} calls on one connection (cProfile counts)")
    print(f"{'tree':<48}{'Python calls':>14}{'all calls':>12}")
    for tree, counts in zip(trees, results, strict=True):
        print(f"{tree!s:<48}{sum(_python(counts).values()):>14.0f}{sum(counts.values()):>12.0f}")
    first = _python(results[0])
    for tree, counts in zip(trees[1:], results[1:], strict=True):
        other = _python(counts)
        print(f"\n# {trees[0]} minus {tree}, per call")
        names = sorted(set(first) | set(other), key=lambda n: (-abs(first.get(n, 0) - other.get(n, 0)), n))
        for name in names[: args.top]:
            diff = first.get(name, 0.0) - other.get(name, 0.0)
            if abs(diff) >= 0.5:
                print(f"{first.get(name, 0.0):7.1f} {other.get(name, 0.0):7.1f} {diff:+7.1f}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, action="append", default=[], help="another checkout to count")
    parser.add_argument("--target", choices=("mcp", "invoke"), default="mcp")
    parser.add_argument("--calls", type=int, default=1000, help="calls counted per tree")
    parser.add_argument("--top", type=int, default=60, help="differing functions shown per tree")
    args = parser.parse_args()
    if not 10 <= args.calls <= 100_000:
        parser.error("--calls in [10, 100000]")
    asyncio.run(amain(args))


if __name__ == "__main__":
    main()
