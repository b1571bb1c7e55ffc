"""Opening the databases Gatekeeper keeps state in, shared by the approval store and the audit sink:
``sqlite`` (one durable file) and ``postgres`` (one schema on a shared server)."""
