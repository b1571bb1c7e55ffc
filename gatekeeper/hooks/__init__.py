"""Hooks that let other agent runtimes ask Gatekeeper before they run a tool."""
