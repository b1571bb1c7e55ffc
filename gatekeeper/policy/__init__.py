"""The pure decision core: (principal, tool, capabilities, policy) → Decision. No I/O here."""

from .casbin_engine import CasbinPolicy
from .engine import PolicyEngine

__all__ = ["CasbinPolicy", "PolicyEngine"]
