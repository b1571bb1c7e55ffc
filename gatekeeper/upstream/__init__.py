"""Transports that carry allowed calls to tools."""

from .http import HttpTransport

__all__ = ["HttpTransport"]
