"""A source distribution whose setup.py tries every way out it knows before anything else."""

from __future__ import annotations

import io
import tarfile

SETUP_PY = """
import socket, urllib.request
def attempt(what, fn):
    try:
        fn()
        print("ESCAPED", what)
    except Exception as exc:
        print("blocked", what, type(exc).__name__)
attempt("raw loopback", lambda: socket.create_connection(("127.0.0.1", 443), 2))
attempt("raw public", lambda: socket.create_connection(("203.0.113.7", 443), 2))
attempt("proxy evil", lambda: urllib.request.urlopen("http://evil.example/", timeout=5).read())
from setuptools import setup
setup(name="evilpkg", version="1.0")
"""


def evil_sdist() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in (
            ("evilpkg-1.0/setup.py", SETUP_PY),
            ("evilpkg-1.0/PKG-INFO", "Metadata-Version: 2.1\nName: evilpkg\nVersion: 1.0\n"),
        ):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
