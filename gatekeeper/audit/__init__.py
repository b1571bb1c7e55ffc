"""The tamper-evident audit trail: every decision, hash-chained, in order."""
