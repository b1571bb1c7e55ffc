"""Python code read with ``ast``: what a ``python -c`` string, a here-document or a ``.py`` file may do.

Code that only computes, prints, imports libraries and touches files through literal paths is
understood: its effects are the files it reads and writes, nothing else. Everything else is said:

- a process started (``os.system``, ``subprocess``, ``pty``, ``os.exec*``...) is ``spawn``, with
  the command line when it is a literal (so the shell inspector reads it too);
- a network library or a socket is ``net`` (its literal URLs and ``(host, port)`` pairs are kept);
- ``exec``/``eval``/``compile`` of a string that is not a literal, ``__import__`` or
  ``importlib`` of a name that is not a literal, ``getattr`` with a computed name, ``globals()``,
  ``__builtins__``, frame and code objects, ``ctypes``, ``pickle``/``marshal`` loading, a
  dangerous builtin used as a value (``e = eval``) and a file path that is not known statically
  are ``opaque``: the program cannot be known without running it;
- unparseable code, and modules neither known to be harmless nor known to be dangerous in the
  standard library, are ``doubt``.

Third-party modules that are not known network or process libraries are imported freely: their
code is the project's environment, which ``python script.py`` already runs. The caller maps the
effects to capabilities (``shell_code.python_inline``, ``written_code``).
"""

from __future__ import annotations

import ast
import hashlib
import sys
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

__all__ = ["Effects", "analyse"]

MAX_NODES: Final = 20_000
MAX_NESTED: Final = 4  # exec("literal") inside exec("literal")...

# Standard-library modules that only compute, format, parse or describe: free to import and use.
PURE_MODULES: Final = frozenset(
    """
    __future__ abc argparse array ast base64 binascii bisect calendar cmath collections colorsys
    contextlib contextvars copy copyreg csv dataclasses datetime decimal difflib dis doctest enum
    errno fnmatch fractions functools gc getopt gettext graphlib hashlib heapq hmac html itertools
    json keyword linecache locale math numbers operator optparse platform pprint pstats queue
    random re reprlib sched secrets shlex statistics string stringprep struct symtable sysconfig
    textwrap threading time timeit token tokenize tomllib traceback typing typing_extensions
    unicodedata unittest uuid warnings weakref xml zipimport zlib zoneinfo cProfile profile
    tracemalloc atexit faulthandler signal stat numbers email mimetypes quopri uu encodings
    wave colorsys ipaddress
    """.split()
)
# Modules whose file functions are read (see FILE_CALLS) and whose other members are harmless.
FILE_MODULES: Final = frozenset(
    {"os", "sys", "io", "pathlib", "shutil", "glob", "tempfile", "codecs", "gzip", "bz2", "lzma",
     "zipfile", "tarfile", "sqlite3", "filecmp", "fileinput", "logging", "configparser", "inspect",
     "importlib", "pkgutil", "concurrent", "asyncio", "types", "site"}
)  # fmt: skip
SPAWN_MODULES: Final = frozenset(
    {"subprocess", "pty", "multiprocessing", "popen2", "commands", "pexpect", "ptyprocess", "sh",
     "plumbum", "invoke", "fabric", "docker", "IPython", "pip", "ensurepip", "venv", "virtualenv",
     "webbrowser", "pdb", "code", "codeop", "runpy", "crypt", "spwd", "pwd", "grp", "resource",
     "readline", "rlcompleter", "cgi", "cgitb", "os2emxpath", "nt", "posix", "_posixsubprocess"}
)  # fmt: skip
NET_MODULES: Final = frozenset(
    {"socket", "ssl", "select", "selectors", "socketserver", "http", "urllib", "urllib2", "urllib3",
     "requests", "httpx", "aiohttp", "httplib2", "pycurl", "ftplib", "smtplib", "poplib", "imaplib",
     "nntplib", "telnetlib", "xmlrpc", "paramiko", "scp", "websocket", "websockets", "socks", "scapy",
     "twisted", "tornado", "grpc", "zmq", "pika", "kafka", "paho", "nats", "redis", "pymongo",
     "psycopg", "psycopg2", "pymysql", "MySQLdb", "boto3", "botocore", "google", "azure", "kubernetes",
     "pwn", "pwnlib", "selenium", "playwright", "mechanize", "treq", "dns", "nmap", "impacket",
     "smbclient", "ftputil", "asyncssh", "wsgiref", "mailbox", "smtpd", "asyncore", "asynchat",
     "ipykernel", "jupyter_client"}
)  # fmt: skip
OPAQUE_MODULES: Final = frozenset(
    {"ctypes", "cffi", "_ctypes", "pickle", "_pickle", "cPickle", "marshal", "shelve", "dill",
     "cloudpickle", "joblib", "builtins", "__builtin__", "imp", "mmap", "gc_hooks", "_thread",
     "sysconfig_hooks", "ptrace", "frida"}
)  # fmt: skip
# Attributes that hand out code, frames or the interpreter's internals.
_OPAQUE_ATTRS: Final = frozenset(
    {"f_globals", "f_locals", "f_builtins", "f_back", "f_code", "gi_frame", "gi_code", "cr_frame",
     "tb_frame", "co_code", "func_globals", "func_code", "modules", "_getframe", "settrace",
     "setprofile", "addaudithook", "meta_path", "path_hooks", "import_module", "reload", "load_module",
     "exec_module", "spec_from_file_location", "module_from_spec", "resolve_name", "find_loader",
     "SourceFileLoader", "FunctionType", "CodeType", "LambdaType", "run_code", "run_path",
     "run_module", "get_ipython", "currentframe", "stack", "getouterframes", "loads", "load",
     "Unpickler"}
)  # fmt: skip
# Attribute names that start processes whatever object they hang on (``numpy.os.system``).
_SPAWN_ATTRS: Final = frozenset(
    {"system", "popen", "Popen", "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve",
     "spawnvp", "spawnvpe", "execl", "execle", "execlp", "execlpe", "execv", "execve", "execvp",
     "execvpe", "fork", "forkpty", "posix_spawn", "posix_spawnp", "startfile", "check_output",
     "check_call", "getoutput", "getstatusoutput", "create_subprocess_exec",
     "create_subprocess_shell", "ProcessPoolExecutor", "kill", "killpg", "fexecve"}
)  # fmt: skip
_NET_ATTRS: Final = frozenset(
    {"urlopen", "urlretrieve", "create_connection", "open_connection", "start_server",
     "open_unix_connection", "SocketHandler", "DatagramHandler", "SysLogHandler", "HTTPHandler",
     "SMTPHandler", "socketpair", "fromfd", "getaddrinfo", "gethostbyname"}
)  # fmt: skip
# What a namespace (``X.__dict__``, ``vars(X)``) may be given to and still be data only.
_DATA_CONSUMERS: Final = frozenset(
    {"print", "repr", "str", "len", "sorted", "list", "set", "frozenset", "tuple", "bool", "type",
     "id", "hasattr", "format", "ascii"}
)  # fmt: skip
# Not isinstance/issubclass (a metaclass's __instancecheck__ is given the object), nor type() with
# more than one argument (the bases' metaclass is given the namespace): user code would hold it.
_NAMESPACE_PARENTS: Final = (ast.Compare, ast.FormattedValue, ast.Subscript, ast.Call, ast.Attribute)
# The process environment whole (every secret in it), and what reads one variable of it by name.
_ENV_VALUES: Final = frozenset({"os.environ", "os.environb", "posix.environ"})
_ENV_FUNCS: Final = frozenset({"os.getenv", "os.getenvb"})
# One variable read by name (its name a literal: a secret one is cred.env, else doubt).
_ENV_GETTERS: Final = (
    frozenset(f"os.{m}.{f}" for m in ("environ", "environb") for f in ("get", "pop", "setdefault"))
    | _ENV_FUNCS
)
_ENV_ATTRS: Final = frozenset({"environ", "environb", "getenv", "getenvb"})
_ENV_KEYED: Final = frozenset({"get", "pop", "setdefault", "keys", "update", "__contains__", "__getitem__"})
_WHOLE_ENV: Final = "(the whole environment)"
# A dict's views lead back to the dict: vars(os).keys().mapping is vars(os) itself.
_VIEW_BACK: Final = frozenset({"mapping"})
# Dunder attributes that are plain data; every other dunder reaches the interpreter's internals.
_SAFE_DUNDERS: Final = frozenset(
    {"__name__", "__doc__", "__version__", "__module__", "__qualname__", "__file__", "__init__",
     "__all__", "__annotations__", "__len__", "__str__", "__repr__", "__eq__", "__hash__",
     "__iter__", "__next__", "__enter__", "__exit__", "__call__", "__getitem__", "__setitem__",
     "__contains__", "__add__", "__mul__", "__sub__", "__truediv__", "__lt__", "__le__", "__gt__",
     "__ge__", "__ne__", "__bool__", "__slots__", "__dataclass_fields__", "__mro__", "__class__",
     "__bases__", "__wrapped__", "__signature__", "__defaults__", "__kwdefaults__", "__path__",
     "__spec__", "__new__", "__del__", "__format__", "__neg__", "__abs__", "__rmul__", "__radd__",
     "__array__", "__fspath__", "__reduce__", "__getstate__", "__setstate__", "__copy__",
     "__deepcopy__", "__sizeof__", "__int__", "__float__", "__index__", "__matmul__", "__pow__",
     "__mod__", "__floordiv__", "__and__", "__or__", "__xor__", "__invert__", "__pos__",
     "__getattr__", "__setattr__", "__init_subclass__", "__set_name__", "__get__", "__set__",
     "__delete__", "__post_init__", "__main__", "__round__", "__reversed__", "__missing__",
     "__context__", "__cause__", "__notes__", "__suppress_context__"}
)  # fmt: skip
# __class__, __mro__, __bases__ are data, but with __subclasses__ or __globals__ they walk to os:
# those two (and __builtins__, __dict__, __code__, __import__...) are not in the list above.
_DANGEROUS_BUILTINS: Final = frozenset(
    {"exec", "eval", "compile", "__import__", "open", "getattr", "setattr", "delattr", "globals",
     "locals", "vars", "breakpoint", "__builtins__", "__loader__", "input_hook", "memoryview_hook"}
)  # fmt: skip
# (module, function) -> which argument is a path, and whether the call writes it.
_READ, _WRITE = "read", "write"
FILE_CALLS: Final[dict[str, tuple[int, str]]] = {
    **{
        f"os.{n}": (0, _WRITE)
        for n in (
            "remove",
            "unlink",
            "rmdir",
            "removedirs",
            "mkdir",
            "makedirs",
            "rename",
            "renames",
            "replace",
            "chmod",
            "lchmod",
            "chown",
            "lchown",
            "symlink",
            "link",
            "truncate",
            "utime",
            "mkfifo",
            "mknod",
            "chroot",
            "setxattr",
            "removexattr",
        )
    },
    **{
        f"os.{n}": (0, _READ)
        for n in (
            "listdir",
            "scandir",
            "walk",
            "stat",
            "lstat",
            "access",
            "readlink",
            "chdir",
            "fwalk",
            "path.exists",
            "path.isfile",
            "path.isdir",
            "path.islink",
            "path.getsize",
            "path.getmtime",
            "path.getctime",
            "path.getatime",
            "path.lexists",
            "path.samefile",
            "path.realpath",
            "getxattr",
            "listxattr",
            "statvfs",
        )
    },
    **{
        f"shutil.{n}": (1, _WRITE)
        for n in ("copy", "copy2", "copyfile", "copytree", "move", "copymode", "copystat", "copyfileobj_path")
    },
    "shutil.rmtree": (0, _WRITE),
    "shutil.make_archive": (0, _WRITE),
    "shutil.unpack_archive": (1, _WRITE),
    "shutil.chown": (0, _WRITE),
    "shutil.disk_usage": (0, _READ),
    "glob.glob": (0, _READ),
    "glob.iglob": (0, _READ),
    "sqlite3.connect": (0, _WRITE),
    "filecmp.cmp": (0, _READ),
    "filecmp.dircmp": (0, _READ),
    "fileinput.input": (0, _READ),
    "logging.FileHandler": (0, _WRITE),
    "logging.basicConfig_filename": (0, _WRITE),
}
# Functions that open a file like ``open(path, mode)``: (path argument, mode argument, default mode).
_OPENERS: Final[dict[str, tuple[int, int, str]]] = {
    "open": (0, 1, "r"),
    "io.open": (0, 1, "r"),
    "codecs.open": (0, 1, "r"),
    "os.open": (0, 1, "w"),  # flags are numbers: O_RDONLY cannot be told from O_WRONLY cheaply
    "gzip.open": (0, 1, "rb"),
    "bz2.open": (0, 1, "rb"),
    "lzma.open": (0, 1, "rb"),
    "tarfile.open": (0, 1, "r"),
    "zipfile.ZipFile": (0, 1, "r"),
    "tarfile.TarFile": (0, 1, "r"),
    "gzip.GzipFile": (0, 1, "rb"),
}
# pathlib methods: the path object is read or written.
_PATH_READS: Final = frozenset(
    {"read_text", "read_bytes", "exists", "is_file", "is_dir", "is_symlink", "iterdir", "glob",
     "rglob", "stat", "lstat", "resolve", "samefile", "owner", "group", "readlink", "walk",
     "is_mount", "absolute", "expanduser"}
)  # fmt: skip
_PATH_WRITES: Final = frozenset(
    {"write_text", "write_bytes", "mkdir", "touch", "unlink", "rmdir", "rename", "replace",
     "symlink_to", "hardlink_to", "link_to", "chmod", "lchmod"}
)  # fmt: skip
_PATH_PURE: Final = frozenset(
    {"name", "stem", "suffix", "suffixes", "parent", "parents", "parts", "with_name", "with_suffix",
     "with_stem", "as_posix", "relative_to", "is_relative_to", "joinpath", "match", "anchor",
     "is_absolute", "drive", "root", "as_uri", "cwd", "home", "full_match"}
)  # fmt: skip
_STDLIB: Final = frozenset(sys.stdlib_module_names)
_PATH_TYPES: Final = frozenset(
    {"pathlib.Path", "pathlib.PosixPath", "pathlib.PurePath", "pathlib.PurePosixPath"}
)
_TEMP_MAKERS: Final = frozenset(
    {
        "mkdtemp",
        "mkstemp",
        "NamedTemporaryFile",
        "TemporaryDirectory",
        "TemporaryFile",
        "SpooledTemporaryFile",
    }
)
_CWD: Final = "."


@dataclass(slots=True)
class Effects:
    """What the code may do. ``understood`` is False when any doubt or opaque reason was found."""

    reads: list[str] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)
    spawns: list[str] = field(default_factory=list)  # evidence; literal command lines in ``commands``
    commands: list[str] = field(default_factory=list)
    net: list[str] = field(default_factory=list)  # evidence of network use
    urls: list[str] = field(default_factory=list)
    endpoints: list[tuple[str, int]] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    opaque: list[str] = field(default_factory=list)
    doubts: list[str] = field(default_factory=list)
    imports: list[str] = field(default_factory=list)  # dotted; relative ones keep their dots

    @property
    def understood(self) -> bool:
        return not self.opaque and not self.doubts

    @property
    def computes_only(self) -> bool:
        """Nothing but computation and reads/writes of the files listed."""
        return self.understood and not (self.spawns or self.net or self.secrets)


class _DigestCache:
    """Effects by the code's digest, least recently used out first: the same code (a helper an
    agent pastes into every ``python -c``, a file written again unchanged) is read once. Keyed
    by a digest, not the text, so a large file is not kept alive by the cache."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: OrderedDict[bytes, Effects] = OrderedDict()
        # functools' name, on the instance only: whoever clears the inspectors' caches (the
        # benchmark's cold rows) finds it as it finds theirs.
        self.cache_clear = self.entries.clear

    def get(self, key: bytes) -> Effects | None:
        fx = self.entries.get(key)
        if fx is not None:
            self.entries.move_to_end(key)
        return fx

    def put(self, key: bytes, fx: Effects) -> None:
        self.entries[key] = fx
        if len(self.entries) > self.size:
            self.entries.popitem(last=False)


_CACHE: Final = _DigestCache(512)


def analyse(code: str) -> Effects:
    """Read ``code``; never raises (what cannot be read is a doubt). The result may be shared
    with other callers (it is cached): read it, do not change it."""
    key = hashlib.blake2b(code.encode("utf-8", "surrogatepass"), digest_size=16).digest()
    fx = _CACHE.get(key)
    if fx is None:
        fx = Effects()
        _analyse(code, fx, 0)
        _CACHE.put(key, fx)
    return fx


def _analyse(code: str, fx: Effects, nested: int) -> None:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        fx.doubts.append(f"not Python that can be parsed: {type(exc).__name__}")
        return
    try:
        _Reader(fx, tree, nested).run(tree)
    except RecursionError:
        fx.doubts.append("code nested too deeply to read")


def _walk(tree: ast.AST) -> list[ast.AST]:
    """Every node, in ``ast.walk``'s order (breadth first), without its generators per node."""
    out: list[ast.AST] = [tree]
    i = 0
    ast_node, listed = ast.AST, list
    while i < len(out):
        node = out[i]
        i += 1
        for name in node._fields:
            value = getattr(node, name, None)
            if isinstance(value, ast_node):
                out.append(value)
            elif type(value) is listed:
                out.extend(v for v in value if isinstance(v, ast_node))
    return out


def _secret(name: str) -> bool:
    from gatekeeper.inspectors.shell_programs import is_secret_name  # it imports this module

    return is_secret_name(name)


class _Reader:
    """One pass over the tree, with what names are bound to (modules, literal strings, paths)."""

    def __init__(self, fx: Effects, tree: ast.AST, nested: int) -> None:
        self.fx = fx
        self.nested = nested
        self.modules: dict[str, str] = {}  # local name -> dotted module or module.member
        self.called: set[int] = set()  # ids of Name/Attribute nodes in call position
        self.values: dict[str, ast.expr] = {}  # name -> the expression it was assigned (once)
        self.following: set[str] = set()  # names being followed (no loops through assignments)
        self.ns_data: set[int] = set()  # ids of namespace reads used as data only (namespace())
        self.ns_keys: dict[int, str | None] = {}  # ids of namespace reads subscripted: the key
        self.env_keyed: set[int] = set()  # ids of os.environ nodes read one name at a time
        self.ns_escapes: set[int] = set()  # ids of calls whose result leads back to a namespace
        stores: dict[str, int] = {}  # how often each name is bound (assignment, loop, parameter...)
        # The tree is walked once; both passes of run() go over this list (a walk costs more
        # than the reading itself for the short code agents send).
        self.walked = _walk(tree)
        self.nodes = len(self.walked)
        for node in self.walked:
            # Node classes are never subclassed: an exact type test, not isinstance chains (and
            # mypy narrows ``type(node) is X`` as it does isinstance).
            if type(node) is ast.Call:
                self.called.add(id(node.func))
            elif type(node) is ast.Assign and len(node.targets) == 1:
                target = node.targets[0]
                if isinstance(target, ast.Name):
                    self.values[target.id] = node.value
            elif type(node) is ast.Name and type(node.ctx) is not ast.Load:
                stores[node.id] = stores.get(node.id, 0) + 1
            elif type(node) is ast.arg:
                stores[node.arg] = stores.get(node.arg, 0) + 2
            elif type(node) is ast.alias:
                name = node.asname or node.name.split(".")[0]
                stores[name] = stores.get(name, 0) + 2
            elif isinstance(node, ast.Global | ast.Nonlocal):
                for name in node.names:
                    stores[name] = stores.get(name, 0) + 2
        self.bound = frozenset(stores)
        for name, count in stores.items():  # bound more than once: its value is not known
            if count != 1:
                self.values.pop(name, None)

    # -- values --------------------------------------------------------------
    def literal(self, node: ast.AST) -> str | None:
        """A string known statically: constants, names bound once to one, joins and f-strings of them."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Constant) and isinstance(node.value, bytes):
            return node.value.decode("latin-1")  # b'/root/.ssh/id_rsa', os.getenvb(b'TOKEN'): the same name
        if isinstance(node, ast.Name):
            if node.id == "__file__":
                return _CWD
            value = self.values.get(node.id)
            if value is None or node.id in self.following:
                return None
            self.following.add(node.id)
            try:
                return self.literal(value)
            finally:
                self.following.discard(node.id)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Div):
            left, right = self.literal(node.left), self.literal(node.right)
            if left is None or right is None:
                return None
            return left + right if isinstance(node.op, ast.Add) else f"{left.rstrip('/')}/{right}"
        if isinstance(node, ast.JoinedStr):
            parts = [self.literal(v) for v in node.values]
            return None if any(p is None for p in parts) else "".join(p for p in parts if p)
        if isinstance(node, ast.FormattedValue):
            return self.literal(node.value) if node.format_spec is None else None
        if isinstance(node, ast.Call):
            target = self.dotted(node.func)
            if target in ("os.path.join", "posixpath.join", "pathlib.Path", "pathlib.PurePath",
                          "pathlib.PosixPath", "os.path.abspath", "os.path.normpath", "str",
                          "os.fspath", "os.path.expanduser"):  # fmt: skip
                parts = [self.literal(a) for a in node.args]
                if not parts:
                    return _CWD
                if any(p is None for p in parts) or node.keywords:
                    return None
                out = ""
                for p in parts:
                    assert p is not None
                    out = p if p.startswith("/") or not out else f"{out.rstrip('/')}/{p}"
                return out
            if target in ("os.getcwd", "pathlib.Path.cwd"):
                return _CWD
        if isinstance(node, ast.Attribute) and node.attr in ("parent", "resolve"):
            inner = self.literal(node.value)
            if inner is not None and node.attr == "parent":
                return inner.rsplit("/", 1)[0] if "/" in inner.strip("/") else _CWD
            return inner
        return None

    def dotted(self, node: ast.AST) -> str | None:
        """``np.linalg.norm`` -> ``numpy.linalg.norm`` through the import aliases; None if not a chain."""
        attrs: list[str] = []
        while isinstance(node, ast.Attribute):
            attrs.append(node.attr)
            node = node.value
        if isinstance(node, ast.Call):  # Path("x").read_text(): the call's target, then the attrs
            inner = self.dotted(node.func)
            return None if inner is None else ".".join([inner, *reversed(attrs)])
        if not isinstance(node, ast.Name):
            return None
        base = self.modules.get(node.id, node.id)
        return ".".join([base, *reversed(attrs)])

    # -- the walk ------------------------------------------------------------
    def run(self, tree: ast.AST) -> None:
        if self.nodes > MAX_NODES:
            self.fx.doubts.append(f"more than {MAX_NODES} syntax nodes")
            return
        for node in self.walked:  # imports first: a name's binding is known wherever it is used
            if type(node) is not ast.Import and type(node) is not ast.ImportFrom:
                continue
            if isinstance(node, ast.Import):
                for alias in node.names:
                    self.fx.imports.append(alias.name)
                    self.module(alias.name)
                    if alias.asname:
                        self.modules[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        self.modules[top] = top
            elif isinstance(node, ast.ImportFrom):
                base = "." * node.level + (node.module or "")
                self.fx.imports.append(base)
                if node.level == 0:
                    self.module(base)
                for alias in node.names:
                    if alias.name == "*":
                        top = base.split(".")[0]
                        if (top in _STDLIB and top not in PURE_MODULES) or self.kind(top) != "free":
                            self.fx.opaque.append(f"from {base} import *: which names it binds is not read")
                        continue
                    full = f"{base}.{alias.name}" if not base.endswith(".") else base + alias.name
                    self.fx.imports.append(full)
                    self.module(full, member=True)
                    self.modules[alias.asname or alias.name] = full
        for node in self.walked:
            if type(node) in _NAMESPACE_PARENTS:
                self.mark_namespace_uses(node)
            if type(node) is ast.Call:
                self.call(node)
            elif type(node) is ast.Attribute:
                self.attribute(node)
            elif type(node) is ast.Name:
                self.name(node)
            elif type(node) is ast.Subscript:
                self.subscript(node)

    def kind(self, top: str) -> str:
        if top in SPAWN_MODULES:
            return "spawn"
        if top in NET_MODULES:
            return "net"
        if top in OPAQUE_MODULES:
            return "opaque"
        if top in _STDLIB and top not in PURE_MODULES and top not in FILE_MODULES and top != "posixpath":
            return "doubt"
        return "free"

    def module(self, dotted: str, *, member: bool = False) -> None:
        """An import: a process, network or opaque module says so (a member of one too)."""
        parts = dotted.split(".")
        top = parts[0]
        kind = self.kind(top)
        if top == "importlib" and len(parts) > 1 and parts[1] not in ("metadata", "resources", "util"):
            kind = "opaque" if parts[1] not in ("machinery", "abc") else "free"
        evidence = f"import {dotted}"
        if kind == "spawn":
            self.fx.spawns.append(evidence)
        elif kind == "net":
            self.fx.net.append(evidence)
        elif kind == "opaque":
            self.fx.opaque.append(evidence)
        elif kind == "doubt":
            self.fx.doubts.append(f"{evidence}: a standard module not known to be harmless")
        if member and len(parts) > 1 and parts[-1] not in _ENV_ATTRS:  # environ: read where used
            self.named(parts[-1], evidence)

    def name(self, node: ast.Name) -> None:
        n = node.id
        if n in ("__builtins__", "__loader__", "__spec__builtins__"):
            self.fx.opaque.append(f"{n}: the interpreter's own namespace")
        elif n in _DANGEROUS_BUILTINS and n not in self.modules and id(node) not in self.called:
            if isinstance(node.ctx, ast.Load) and n not in self.bound:
                self.fx.opaque.append(f"{n} used as a value (aliased, it cannot be followed)")
        elif n in self.modules and id(node) not in self.called and isinstance(node.ctx, ast.Load):
            target = self.modules[n]
            self.environment(node, target)
            if target.split(".")[0] in ("os", "sys", "builtins", "importlib", "shutil", "io", "pathlib"):
                return  # attribute access is read by attribute(); a bare use is checked there
        elif n == "__import__" or (n.startswith("__") and n not in _SAFE_DUNDERS and n.endswith("__")):
            self.fx.opaque.append(f"{n}")

    def attribute(self, node: ast.Attribute) -> None:
        a = node.attr
        if a in _SPAWN_ATTRS and a not in ("kill",):
            self.fx.spawns.append(f".{a}")
        elif a in _NET_ATTRS:
            self.fx.net.append(f".{a}")
        elif a == "__dict__":
            self.namespace(node, "attribute __dict__")
        elif a.startswith("__") and a.endswith("__") and a not in _SAFE_DUNDERS:
            self.fx.opaque.append(f"attribute {a}: the interpreter's internals")
        elif a in _OPAQUE_ATTRS and a not in ("load", "loads", "stack", "modules"):
            self.fx.opaque.append(f"attribute {a}")
        dotted = self.dotted(node)
        if dotted is None:
            return
        self.environment(node, dotted)
        parts = dotted.split(".")
        if parts[0] in ("pickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle") and a in (
            "load",
            "loads",
            "Unpickler",
            "open",
        ):
            self.fx.opaque.append(f"{dotted}: loading a pickle runs code")
        elif dotted in ("sys.modules", "os.environ.__dict__"):
            self.fx.opaque.append(dotted)
        elif dotted == "os.kill" or dotted == "os.killpg":
            self.fx.spawns.append(dotted)
        # a module reached through another one: pathlib.os, numpy.os
        for i, p in enumerate(parts[1:], 1):
            if (
                p in ("os", "subprocess", "sys", "builtins", "socket", "importlib", "ctypes")
                and i < len(parts) - 1
            ):
                kind = self.kind(p) if p not in ("os", "sys") else "free"
                if kind != "free":
                    self.fx.opaque.append(f"{dotted}: a module reached through another")

    def named(self, name: str, evidence: str) -> None:
        """An attribute reached by its name as a string (getattr, a namespace's key)."""
        if name in _ENV_ATTRS:
            self.fx.secrets.append(_WHOLE_ENV)  # which variable it is then asked for is not followed
        elif name in _SPAWN_ATTRS:
            self.fx.spawns.append(evidence)
        elif name in _NET_ATTRS:
            self.fx.net.append(evidence)
        elif name in _OPAQUE_ATTRS or (name.startswith("__") and name not in _SAFE_DUNDERS):
            self.fx.opaque.append(evidence)

    def child_environment(self, value: ast.expr, *, followed: bool = False) -> None:
        """An ``env=`` argument built from ``os.environ`` (its copy, ``dict(os.environ, X=1)``,
        ``{**os.environ, ...}``, or a name bound once to one of those and otherwise only added
        to): the environment is handed to a child as it is, not read here."""
        if type(value) is ast.Name and not followed:
            bound = self.values.get(value.id)
            if bound is not None and self.only_added_to(value.id):
                self.child_environment(bound, followed=True)
            return
        inner: list[ast.AST] = []
        if type(value) is ast.Call and type(value.func) is ast.Attribute and value.func.attr == "copy":
            inner.append(value.func.value)
        elif type(value) is ast.Call and type(value.func) is ast.Name and value.func.id == "dict":
            inner += value.args[:1]
        elif type(value) is ast.Dict:
            inner += [v for k, v in zip(value.keys, value.values, strict=True) if k is None]
        else:
            inner.append(value)
        for node in inner:
            if self.dotted(node) in _ENV_VALUES:
                self.env_keyed.add(id(node))

    def only_added_to(self, name: str) -> bool:
        """Every use of ``name`` is as ``env=``, a key set (``e[K] = v``) or ``e.update(...)``."""
        parents: dict[int, ast.AST] = {}
        for node in self.walked:
            for child in ast.iter_child_nodes(node):
                if type(child) is ast.Name and child.id == name:
                    parents[id(child)] = node
        for node in self.walked:
            if type(node) is not ast.Name or node.id != name or type(node.ctx) is not ast.Load:
                continue
            parent = parents.get(id(node))
            if type(parent) is ast.keyword and parent.arg == "env":
                continue
            if type(parent) is ast.Subscript and type(parent.ctx) is ast.Store:
                continue
            if type(parent) is ast.Attribute and parent.attr in ("update", "setdefault"):
                continue
            return False
        return True

    def environment(self, node: ast.AST, dotted: str) -> None:
        """``os.environ`` used whole (printed, copied, iterated) or ``os.getenv`` handed around:
        every variable, secrets included, as ``env`` alone reads them."""
        if (dotted in _ENV_VALUES and id(node) not in self.env_keyed) or (
            dotted in _ENV_FUNCS and id(node) not in self.called
        ):
            self.fx.secrets.append(_WHOLE_ENV)

    def namespace(self, node: ast.AST, evidence: str) -> None:
        """``X.__dict__`` or ``vars(X)``: every attribute of X, modules' functions included. As data
        (printed, measured, ``in``, its keys) it hands nothing out; a value taken by a literal key is
        that attribute (checked as getattr's name is); any other use is doubt."""
        if id(node) in self.ns_data:
            return
        if id(node) in self.ns_keys:
            key = self.ns_keys[id(node)]
            if key is None:
                self.fx.opaque.append(f"{evidence}[...]: a namespace read by a key not known statically")
            else:
                self.named(key, f"{evidence}[{key!r}]")
            return
        self.fx.opaque.append(f"{evidence}: a namespace used as more than data")

    def mark_namespace_uses(self, node: ast.AST) -> None:
        """Before a namespace node is visited (the walk is breadth first): how its parent uses it."""
        if type(node) is ast.Compare:
            # x in NS is dict.__contains__; in a chain (x in NS in C()) NS is also the left side of
            # the next comparison, whose right side's code is given it: data only before `is`.
            ops = node.ops
            for i, (op, right) in enumerate(zip(ops, node.comparators, strict=True)):
                if type(op) is ast.In or type(op) is ast.NotIn:
                    self.env_keyed.add(id(right))  # "X" in os.environ: a presence test
                    after = ops[i + 1] if i + 1 < len(ops) else None
                    if after is None or type(after) is ast.Is or type(after) is ast.IsNot:
                        self.ns_data.add(id(right))
        elif type(node) is ast.Attribute:
            if node.attr in _VIEW_BACK:  # .keys().mapping: the namespace again, not data
                self.ns_escapes.add(id(node.value))
        elif type(node) is ast.FormattedValue:
            self.ns_data.add(id(node.value))
        elif type(node) is ast.Subscript:
            self.ns_keys[id(node.value)] = self.literal(node.slice)
            self.env_keyed.add(id(node.value))  # os.environ[KEY]: subscript() reads the key
        elif type(node) is ast.Call:
            func = node.func
            for kw in node.keywords:
                if kw.arg == "env":  # subprocess.run(..., env=os.environ.copy()): a child's, not read
                    self.child_environment(kw.value)
            if type(func) is ast.Name and func.id in _DATA_CONSUMERS and func.id not in self.bound:
                if func.id != "type" or (len(node.args) == 1 and not node.keywords):
                    self.ns_data.update(id(a) for a in node.args)
            elif type(func) is ast.Attribute and func.attr == "keys" and not node.args:
                if id(node) not in self.ns_escapes:
                    self.ns_data.add(id(func.value))
            elif type(func) is ast.Attribute and func.attr == "get" and node.args:
                self.ns_keys[id(func.value)] = self.literal(node.args[0])
            if type(func) is ast.Attribute and func.attr in _ENV_KEYED:
                self.env_keyed.add(id(func.value))  # os.environ.get(KEY): call() reads the key

    def subscript(self, node: ast.Subscript) -> None:
        base = self.dotted(node.value)
        if base in ("os.environ", "os.environb"):
            key = self.literal(node.slice)
            if key is None:
                self.fx.opaque.append(f"{base}[...] with a computed name")
            elif _secret(key):
                self.fx.secrets.append(key)

    def call(self, node: ast.Call) -> None:
        func = node.func
        target = self.dotted(func)
        args = node.args
        if (
            isinstance(func, ast.Name)
            and func.id in ("exec", "eval", "compile")
            and func.id not in self.modules
        ):
            code = self.literal(args[0]) if args else None
            if code is None or self.nested >= MAX_NESTED:
                self.fx.opaque.append(f"{func.id} of a string not known statically")
            else:
                _analyse(code, self.fx, self.nested + 1)
            return
        if (isinstance(func, ast.Name) and func.id == "__import__") or target in (
            "importlib.import_module",
            "importlib.__import__",
        ):
            mod = self.literal(args[0]) if args else None
            if mod is None:
                self.fx.opaque.append("a module imported by a name not known statically")
            else:
                self.module(mod)
            return
        if isinstance(func, ast.Name) and func.id in ("getattr", "setattr", "delattr"):
            name = self.literal(args[1]) if len(args) > 1 else None
            if name is None:
                self.fx.opaque.append(f"{func.id} with a name not known statically")
            else:
                self.named(name, f"{func.id}(..., {name!r})")
            return
        if isinstance(func, ast.Name) and func.id == "hasattr":
            return  # a bool: nothing is handed out
        if isinstance(func, ast.Name) and func.id in ("globals", "locals", "vars", "breakpoint"):
            if func.id != "vars" or not args:
                self.fx.opaque.append(f"{func.id}(): the namespace itself")
            else:
                self.namespace(node, "vars(...)")
            return
        if target is None:
            return
        if target in _ENV_GETTERS:
            key = self.literal(args[0]) if args else None
            if key is None:
                self.fx.opaque.append(f"{target} with a computed name")
            elif _secret(key):
                self.fx.secrets.append(key)
            return
        top = target.split(".")[0]
        if self.kind(top) == "spawn" or target.rsplit(".", 1)[-1] in _SPAWN_ATTRS:
            cmd = self.command(args)
            if cmd:
                self.fx.commands.append(cmd)
            return
        if self.kind(top) == "net" or target.rsplit(".", 1)[-1] in _NET_ATTRS:
            self.endpoints(node)
            return
        self.files(node, target)

    def command(self, args: list[ast.expr]) -> str | None:
        if not args:
            return None
        first = args[0]
        text = self.literal(first)
        if text is not None:
            return text
        if isinstance(first, ast.List | ast.Tuple):
            words = [self.literal(e) for e in first.elts]
            if all(w is not None for w in words):
                return " ".join(w for w in words if w is not None)
        return None

    def endpoints(self, node: ast.Call) -> None:
        for arg in [*node.args, *(k.value for k in node.keywords)]:
            text = self.literal(arg)
            if text is not None and "://" in text:
                self.fx.urls.append(text)
            if isinstance(arg, ast.Tuple) and len(arg.elts) == 2:
                host, port = self.literal(arg.elts[0]), arg.elts[1]
                if host is not None and isinstance(port, ast.Constant) and isinstance(port.value, int):
                    self.fx.endpoints.append((host, port.value))

    def files(self, node: ast.Call, target: str) -> None:
        """open(), os/shutil/glob calls and pathlib methods: the paths read and written."""
        short = target
        for prefix in ("pathlib.Path.", "pathlib.PosixPath."):
            if short.startswith(prefix):
                short = "pathlib.Path." + short[len(prefix) :]
        if target in _OPENERS or (target.startswith(("io.", "codecs.")) and target.endswith(".open")):
            pos, mode_pos, default = _OPENERS.get(target, (0, 1, "r"))
            mode = default
            mode_node = node.args[mode_pos] if len(node.args) > mode_pos else None
            for k in node.keywords:
                if k.arg == "mode":
                    mode_node = k.value
            if mode_node is not None:
                mode = self.literal(mode_node) or "w"
            self.path_arg(node, pos, _WRITE if any(c in mode for c in "wax+") else _READ, target)
            return
        spec = FILE_CALLS.get(target)
        if spec is not None:
            self.path_arg(node, spec[0], spec[1], target)
            if target.startswith("shutil.") and spec[0] == 1:
                self.path_arg(node, 0, _READ, target)
            return
        if target == "logging.basicConfig":
            for k in node.keywords:
                if k.arg == "filename":
                    self.path_value(k.value, _WRITE, target)
            return
        if target in _PATH_TYPES:
            for arg in node.args:  # the path itself is read (an absolute one would be seen anyway)
                self.path_value(arg, _READ, target)
            return
        if target.startswith("tempfile."):
            if target.rsplit(".", 1)[-1] in _TEMP_MAKERS:
                self.fx.writes.append("/tmp")  # noqa: S108 - where tempfile writes, not a file we use
            return
        method = target.rsplit(".", 1)[-1]
        if isinstance(node.func, ast.Attribute) and (
            method in _PATH_READS or method in _PATH_WRITES or method == "open"
        ):
            receiver = node.func.value
            if self.is_path(receiver):
                if method == "open":
                    mode = "r"
                    if node.args:
                        mode = self.literal(node.args[0]) or "w"
                    for k in node.keywords:
                        if k.arg == "mode":
                            mode = self.literal(k.value) or "w"
                    kind = _WRITE if any(c in mode for c in "wax+") else _READ
                else:
                    kind = _WRITE if method in _PATH_WRITES else _READ
                self.path_value(receiver, kind, target)
                if method in ("rename", "replace", "symlink_to", "hardlink_to") and node.args:
                    self.path_value(node.args[0], _WRITE, target)
            elif method in _PATH_WRITES and not (method in ("replace", "chmod") and len(node.args) != 1):
                self.fx.opaque.append(f".{method}() on an object not known to be a literal path")
            elif method in ("extractall", "extract"):
                dest = (
                    node.args[0]
                    if node.args
                    else next((k.value for k in node.keywords if k.arg == "path"), None)
                )
                if dest is None:
                    self.fx.writes.append(_CWD)
                else:
                    self.path_value(dest, _WRITE, target)

    def is_path(self, node: ast.AST) -> bool:
        """Is this expression a pathlib path (``Path(...)``, ``p / "x"``, a name bound to one)?"""
        if isinstance(node, ast.Call):
            return self.dotted(node.func) in ("pathlib.Path", "pathlib.PosixPath", "pathlib.PurePath",
                                              "pathlib.Path.cwd", "pathlib.Path.home")  # fmt: skip
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            return self.is_path(node.left)
        if isinstance(node, ast.Attribute) and node.attr in ("parent", "resolve"):
            return self.is_path(node.value)
        if isinstance(node, ast.Name) and node.id in self.values and node.id not in self.following:
            self.following.add(node.id)
            try:
                return self.is_path(self.values[node.id])
            finally:
                self.following.discard(node.id)
        return False

    def path_arg(self, node: ast.Call, pos: int, kind: str, target: str) -> None:
        value = node.args[pos] if len(node.args) > pos else None
        if value is None:
            for k in node.keywords:
                if k.arg in ("file", "path", "filename", "name", "src", "dst", "database", "pathname"):
                    value = k.value
                    break
        if value is None:
            if pos == 0 and target in ("os.listdir", "os.scandir", "os.walk"):
                (self.fx.reads if kind == _READ else self.fx.writes).append(_CWD)
            return
        if isinstance(value, ast.Constant) and isinstance(value.value, int):
            return  # a file descriptor already open
        self.path_value(value, kind, target)

    def path_value(self, value: ast.AST, kind: str, target: str) -> None:
        text = self.literal(value)
        if text is None:
            self.fx.opaque.append(f"{target}: a path not known statically")
        elif text != ":memory:":
            (self.fx.reads if kind == _READ else self.fx.writes).append(text)
