"""Adapters that put Gatekeeper in front of agent frameworks' tools.

Each wraps a framework's own tool so that every call is first decided by Gatekeeper
(``POST /v1/decide``; the framework then runs the tool itself) or, for tools that live behind
Gatekeeper, forwarded by it (``POST /v1/invoke``). A refusal, a held call or an unreachable
Gatekeeper comes back to the model as the tool's result, in words it can act on; the tool is
not run. Install the framework with its extra: ``gatekeeper[langchain]``,
``gatekeeper[openai-agents]``, ``gatekeeper[pydantic-ai]``.
"""

from ._gate import ArgumentMap, gated_call, refusal_text

__all__ = ["ArgumentMap", "gated_call", "refusal_text"]
