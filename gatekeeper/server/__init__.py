"""The HTTP side: agent listener, operator listener, and their shared plumbing."""
