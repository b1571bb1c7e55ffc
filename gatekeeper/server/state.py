"""Typed application state shared by handlers (aiohttp AppKeys)."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from ..approvals.queue import ApprovalQueue
from ..audit.log import AuditLog
from ..budgets import BudgetCounter
from ..config import Config
from ..escalation import EscalationHandler
from ..gate import Gate
from ..identity import TokenVerifier
from ..lifecycle import Lifecycle
from ..mcp_sessions import SessionOwners
from ..metrics import Metrics
from ..pipeline import DecisionSinks, Transport
from ..recent import RecentDecisions
from ..runner.transport import Runner
from ..tool_pins import ToolPins
from ..upstream import ToolTransport
from ..written.records import WrittenCodeStore

CONFIG = web.AppKey("config", Config)
GATE = web.AppKey("gate", Gate)
VERIFIER = web.AppKey("verifier", TokenVerifier)
METRICS = web.AppKey("metrics", Metrics)
ESCALATION = web.AppKey("escalation", EscalationHandler)
TRANSPORT = web.AppKey("transport", ToolTransport)
TOOL_CALLS = web.AppKey("tool_calls", Transport)  # /v1/invoke's transport: TRANSPORT, by the call's upstream
CLIENT_SESSION = web.AppKey("client_session", aiohttp.ClientSession)
APPROVALS = web.AppKey("approvals", ApprovalQueue)
RECENT = web.AppKey("recent", RecentDecisions)  # set by the app; handlers cope with it missing
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
BUDGETS = web.AppKey("budgets", BudgetCounter)
SINKS = web.AppKey("decision_sinks", DecisionSinks)
AUDIT = web.AppKey("audit", AuditLog)
WORKER = web.AppKey("worker", int)  # this process's index among workers (gatekeeper.workers)
RUNNER = web.AppKey("runner", Runner)  # set only when the sandboxed runner is enabled
MCP_SESSIONS = web.AppKey("mcp_sessions", SessionOwners)  # who owns each Mcp-Session-Id
MCP_EVENT_KEY = web.AppKey("mcp_event_key", bytes)  # tags relayed SSE event ids (mcp_events)
TOOL_PINS = web.AppKey("tool_pins", ToolPins)  # MCP tool definitions pinned by digest
WRITTEN_CODE = web.AppKey("written_code", WrittenCodeStore)  # what code file.write wrote does
