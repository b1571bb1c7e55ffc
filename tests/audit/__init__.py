"""Audit trail tests."""
