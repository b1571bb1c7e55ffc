"""The ``gatekeeper`` command: one module per verb group."""
