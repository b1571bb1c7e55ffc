"""Demo tool upstreams: simulated, harmless tools behind plain HTTP and MCP.

They give ``gatekeeper serve`` something to guard out of the box and give tests a real
upstream to forward to. Nothing here executes a command, opens an outbound connection or
writes a real file.
"""

from gatekeeper.demo.runner import DemoUpstream
from gatekeeper.demo.tools import TOOL_NAMES, TOOL_SCHEMAS, ReceivedCall
from gatekeeper.demo.workspace import Workspace

__all__ = ["TOOL_NAMES", "TOOL_SCHEMAS", "DemoUpstream", "ReceivedCall", "Workspace"]
