"""Several serving processes on the same listeners (``workers: N``).

A supervisor (``supervisor``) binds nothing it serves: each worker (``child``) is a whole
Gatekeeper bound with ``SO_REUSEPORT``, so the kernel spreads connections across them. What
the workers share lives where every process sees it: approvals in SQLite (WAL, with a polled
change table) or PostgreSQL (LISTEN/NOTIFY), budgets in Redis, metrics in prometheus_client's
multiprocess files. Each worker writes an audit chain of its own. A configuration whose state
would silently split across processes is refused (``shared``).
"""
