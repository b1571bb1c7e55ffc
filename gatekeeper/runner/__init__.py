"""The sandboxed runner: the demo tools made real, contained by bubblewrap and the egress gate.

``settings`` is imported by the config; the rest only when a runner is enabled.
"""
