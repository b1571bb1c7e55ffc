"""The egress gate: the sandbox's only way out, decided by the same policy as the call that
started the process (``credentials`` binds a connection to its call, ``decide`` is the pure
decision, ``proxy`` the listener, ``relay`` the byte pump)."""
