"""``gatekeeper policy lint|test|explain|replay``: the policy author's tools, all offline;
and ``gatekeeper policy publish``, which sends a validated set to every replica of a fleet.

The policy set is the configured one (``--config``: its ``policy`` section; without it the
default pack) or, with ``--dir DIR``, ``DIR/model.conf``, ``DIR/policy.csv`` and
``DIR/tools.yaml``; policy tests live in ``DIR/tests/*.yaml``.

Exit codes: 0 fine (lint: warnings only), 1 lint errors / failing tests / a policy that does not
load (``--fail-on-change`` replay with changes), 2 usage or an unreadable input file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import structlog

from .. import strictjson
from ..audit.log import make_sink
from ..budgets import open_counter
from ..config import PolicyFiles, load_config
from ..errors import ConfigError, GatekeeperError
from ..gate import PolicySet, load_policy_set
from ..models import Principal
from ..policy.explain import explain, render
from ..policy.lint import ERROR, INFO, WARNING, has_errors, lint, policy_files_in
from ..policy.replay import ReplayReport, read_jsonl, replay, replay_async
from ..policy.testing import discover, run_files
from ..policy_sync import publish
from .audit import parse_time

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
_MAX_ARGUMENT_BYTES = 1024 * 1024


def register(sub: Any) -> None:
    p = sub.add_parser("policy", help="lint, test, explain and replay policies (offline)")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    lint_p = verbs.add_parser("lint", help="check model, rules and manifests; findings as file:line")
    _source_options(lint_p)
    lint_p.add_argument(
        "--known-role",
        action="append",
        default=None,
        metavar="ROLE",
        help="a role tokens can carry; repeat. Rules for roles none of these reach are reported",
    )
    lint_p.add_argument("--json", action="store_true", help="print findings as JSON")
    lint_p.set_defaults(run=run_lint)

    test_p = verbs.add_parser("test", help="run policy test files (DIR/tests/*.yaml)")
    _source_options(test_p)
    test_p.add_argument(
        "--file", action="append", type=Path, default=None, help="a test file; repeat (default: DIR/tests/)"
    )
    test_p.add_argument("--json", action="store_true", help="print every result as JSON")
    test_p.add_argument("-v", "--verbose", action="store_true", help="also list passing cases")
    test_p.set_defaults(run=run_test)

    explain_p = verbs.add_parser("explain", help="why one call is decided so: capabilities, rules, decision")
    _source_options(explain_p)
    explain_p.add_argument("--tool", required=True, help="the tool name, e.g. shell.exec")
    explain_p.add_argument("--arguments", default="{}", help='the arguments as JSON, e.g. \'{"cmd": "ls"}\'')
    explain_p.add_argument("--role", action="append", default=[], help="a role of the caller; repeat")
    explain_p.add_argument(
        "--sub", default="policy-author", help="the caller's subject (default policy-author)"
    )
    explain_p.add_argument("--json", action="store_true", help="print the explanation as JSON")
    explain_p.set_defaults(run=run_explain)

    replay_p = verbs.add_parser("replay", help="re-decide recorded calls under a candidate policy")
    replay_p.add_argument("--config", type=Path, default=None, help="path to gatekeeper.yaml")
    replay_p.add_argument(
        "--from",
        dest="source",
        type=Path,
        default=None,
        help="audit export (JSON lines of records); without it, the configured audit store is read",
    )
    replay_p.add_argument(
        "--candidate-dir",
        type=Path,
        default=None,
        help="the candidate policy directory (default: configured)",
    )
    replay_p.add_argument("--since", default=None, help="only records at or after this ISO 8601 time")
    replay_p.add_argument("--until", default=None, help="only records before this ISO 8601 time")
    replay_p.add_argument("--examples", type=int, default=5, help="examples per transition (default 5)")
    replay_p.add_argument("--json", action="store_true", help="print the report as JSON")
    replay_p.add_argument(
        "--fail-on-change", action="store_true", help="exit 1 when any outcome would change (for CI)"
    )
    replay_p.set_defaults(run=run_replay)

    publish_p = verbs.add_parser(
        "publish", help="validate a policy set and send it to every replica (policy.sync, PostgreSQL)"
    )
    publish_p.add_argument(
        "--config", type=Path, default=None, help="path to gatekeeper.yaml (its policy.sync and schema)"
    )
    publish_p.add_argument(
        "--dir", type=Path, default=None, help="the policy directory to publish (default: configured files)"
    )
    publish_p.set_defaults(run=run_publish)


def _source_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--config", type=Path, default=None, help="path to gatekeeper.yaml (its policy files)")
    group.add_argument("--dir", type=Path, default=None, help="a policy directory laid out like policies/")


def _files(args: argparse.Namespace) -> tuple[PolicyFiles, frozenset[str] | None]:
    """The policy files, and the upstream names to check manifests against (only with --config)."""
    if getattr(args, "dir", None) is not None:
        return policy_files_in(args.dir), None
    config = load_config(args.config, offline=True)
    upstreams = frozenset(config.upstreams) if args.config is not None else None
    return config.policy, upstreams


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    """The gate logs refusals it turns into decisions; these commands report them themselves."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    try:
        yield
    finally:
        structlog.configure(**saved)


def _load(files: PolicyFiles, upstreams: frozenset[str] | None) -> PolicySet:
    return load_policy_set(files, upstreams)


def run_lint(args: argparse.Namespace) -> int:
    files, upstreams = _files(args)
    findings = lint(files, upstreams=upstreams, known_roles=args.known_role)
    if args.json:
        print(json.dumps([f.to_json() for f in findings], indent=2))
    else:
        for finding in findings:
            print(finding)
        counts = {s: sum(1 for f in findings if f.severity == s) for s in (ERROR, WARNING, INFO)}
        print(f"{counts[ERROR]} errors, {counts[WARNING]} warnings, {counts[INFO]} notes")
    return EXIT_FAILED if has_errors(findings) else EXIT_OK


def run_test(args: argparse.Namespace) -> int:
    files, upstreams = _files(args)
    if args.file:
        test_files = list(args.file)
    else:
        test_dir = Path(files.policy).parent / "tests"
        test_files = discover(test_dir)
        if not test_files:
            print(f"gatekeeper: no policy test files in {test_dir}", file=sys.stderr)
            return EXIT_FAILED
    policy_set = _load(files, upstreams)
    with _quiet_logs():
        report = run_files(policy_set, test_files)
    if args.json:
        print(
            json.dumps(
                {
                    "passed": report.passed,
                    "failed": report.failed,
                    "results": [r.to_json() for r in report.results],
                },
                indent=2,
            )
        )
    else:
        for result in report.results:
            if not result.passed:
                print(result.describe())
                for problem in result.problems:
                    print(f"  problem:      {problem}")
            elif args.verbose:
                print(f"ok   {result.case.where}: {result.case.name}")
        print(report.summary())
    if not report.results:
        return EXIT_FAILED
    return EXIT_OK if report.ok else EXIT_FAILED


def run_explain(args: argparse.Namespace) -> int:
    files, upstreams = _files(args)
    try:
        arguments = strictjson.loads(args.arguments.encode(), max_bytes=_MAX_ARGUMENT_BYTES)
    except GatekeeperError as exc:
        print(f"gatekeeper: --arguments: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    policy_set = _load(files, upstreams)
    principal = Principal(args.sub, tuple(args.role), "gatekeeper-dev", 0.0)
    with _quiet_logs():
        report = explain(policy_set, principal, args.tool, arguments)
        keys = [b["key"] for b in report.get("budgets") or []]
        config = (
            load_config(args.config, offline=True, needed=("budgets.store",)) if args.dir is None else None
        )
        store = config.budget_store if config is not None else "memory"
        if keys and store != "memory" and config is not None:  # a fleet's shared counters: live usage
            usage = asyncio.run(_shared_usage(store, keys, config.budget_prefix))
            report = explain(policy_set, principal, args.tool, arguments, usage=usage)
        elif keys:
            report["usage_note"] = (
                "usage: counted from zero (a server's in-memory counters are not visible here; its "
                "operator API, POST /v1/explain, answers with what is spent now)"
            )
    print(json.dumps(report, indent=2, ensure_ascii=False) if args.json else render(report))
    return EXIT_OK


async def _shared_usage(store: str, keys: list[str], prefix: str) -> dict[str, float]:
    counter = open_counter(store, prefix=prefix)
    await counter.open()
    try:
        now = time.time()
        return {key: sum(u.used for u in await counter.usage(key, now=now)) for key in keys}
    finally:
        await counter.close()


def _epoch(text: str | None, option: str) -> float | None:
    """The times ``audit export`` takes: ISO 8601, epoch seconds, ``now``, or a time ago (``7d``)."""
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError:
        raise ConfigError(f"{option}: not a time (ISO 8601, now, or a time ago: 7d): {text!r}") from None


def run_replay(args: argparse.Namespace) -> int:
    since = _epoch(args.since, "--since")
    until = _epoch(args.until, "--until")
    if args.examples < 0:
        raise ConfigError("--examples must be 0 or more")
    if args.candidate_dir is not None:
        files, upstreams = policy_files_in(args.candidate_dir), None
    else:
        config = load_config(args.config, offline=True)
        files = config.policy
        upstreams = frozenset(config.upstreams) if args.config is not None else None
    candidate = _load(files, upstreams)
    with _quiet_logs():
        if args.source is not None:
            report = replay(
                read_jsonl(args.source), candidate, examples=args.examples, since=since, until=until
            )
        else:
            report = asyncio.run(_replay_store(args, candidate, since, until))
    print(json.dumps(report.to_json(), indent=2, ensure_ascii=False) if args.json else report.render())
    return EXIT_FAILED if args.fail_on_change and report.changed else EXIT_OK


async def _replay_store(
    args: argparse.Namespace, candidate: PolicySet, since: float | None, until: float | None
) -> ReplayReport:
    """Replay straight from the audit trail the running Gatekeeper writes (SQLite or PostgreSQL)."""
    config = load_config(args.config, offline=True, needed=("approvals.store",))
    sink = make_sink(config.approvals.store, config.data_dir, schema=config.approvals.postgres_schema)
    await sink.open()
    try:
        return await replay_async(
            sink.records(since=since, until=until),
            candidate,
            examples=args.examples,
            since=since,
            until=until,
        )
    finally:
        await sink.close()


def run_publish(args: argparse.Namespace) -> int:
    config = load_config(args.config, offline=True, needed=("policy.sync",))
    if not config.policy_sync:
        raise ConfigError("policy.sync is not set in the configuration: there is no fleet to publish to")
    files = policy_files_in(args.dir) if args.dir is not None else config.policy
    upstreams = frozenset(config.upstreams) if args.config is not None else None
    with _quiet_logs():
        published = asyncio.run(
            publish(config.policy_sync, config.approvals.postgres_schema, files, upstreams)
        )
    print(f"published policy {published.version} (#{published.seq}) to {config.approvals.postgres_schema}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """``gatekeeper policy ...`` on its own (as ``gatekeeper.cli.main`` runs it, same exit codes)."""
    parser = argparse.ArgumentParser(prog="gatekeeper")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    register(sub)
    args = parser.parse_args(argv)
    try:
        result: int = args.run(args)
        return result
    except ConfigError as exc:
        print(f"gatekeeper: configuration error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except GatekeeperError as exc:
        print(f"gatekeeper: {exc.message}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
