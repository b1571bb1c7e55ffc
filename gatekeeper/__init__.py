"""Gatekeeper: a capability-gating authorization proxy for AI agents' tool calls."""

__version__ = "0.1.0"
