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
import io
import itertools
import posixpath
import re
import sys
import tokenize
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

__all__ = ["DATA_MEMBERS", "Effects", "analyse", "is_data_member", "without_data_urls"]

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
     "create_subprocess_shell", "ProcessPoolExecutor", "kill", "killpg", "fexecve", "subprocess_exec",
     "subprocess_shell"}
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
# Members of network libraries that only parse, build or describe (a URL, a request never sent,
# an exception): importing and calling them connects nowhere. Dotted prefixes.
DATA_MEMBERS: Final = (
    "urllib.parse", "urllib.error", "urllib3.util.url", "urllib3.util.parse_url", "urllib3.util.Url",
    "urllib3.util.retry", "urllib3.util.Retry", "urllib3.util.timeout", "urllib3.util.Timeout",
    "urllib3.exceptions", "urllib3.fields", "requests.exceptions", "requests.structures",
    "requests.status_codes", "requests.codes", "requests.models.Request", "requests.models.PreparedRequest",
    "requests.Request", "requests.PreparedRequest", "requests.utils.get_auth_from_url",
    "requests.utils.requote_uri", "requests.utils.urldefragauth", "requests.utils.prepend_scheme_if_needed",
    "requests.utils.unquote_unreserved", "requests.utils.parse_header_links", "requests.utils.quote",
    "requests.utils.unquote", "requests.utils.urlparse", "requests.compat.urlparse",
    "requests.compat.urlsplit", "requests.compat.quote", "requests.compat.unquote", "http.HTTPStatus",
    "httpx.URL", "httpx.Headers", "httpx.QueryParams", "yarl", "rfc3986", "furl", "hyperlink",
)  # fmt: skip


def is_data_member(dotted: str) -> bool:
    return any(dotted == p or dotted.startswith(p + ".") for p in DATA_MEMBERS)


# What a module is asked when only described: nothing of it runs beyond its import.
_DESCRIPTIONS: Final = frozenset(
    {"__version__", "__file__", "__name__", "__path__", "__doc__", "__all__", "VERSION", "version",
     "version_info", "__author__"}
)  # fmt: skip
# Serializers whose import alone is doubt (their loads run code a file holds), and what of each
# only writes: code that imports one and uses nothing else of it runs nothing it reads.
_DUMPING_MEMBERS: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {
        **dict.fromkeys(
            ("pickle", "_pickle", "cPickle"),
            frozenset({"dump", "dumps", "Pickler", "PickleError", "PicklingError", "UnpicklingError",
                       "HIGHEST_PROTOCOL", "DEFAULT_PROTOCOL", "PickleBuffer"}) | _DESCRIPTIONS,
        ),
        **dict.fromkeys(("dill", "cloudpickle", "joblib"), frozenset({"dump", "dumps"}) | _DESCRIPTIONS),
    }
)  # fmt: skip
# Loaders of other libraries that run code a file holds (a pickle's reduce, YAML's python tags):
# reading such a file is running it. Always: these. Unless a keyword makes them safe: below.
_CODE_LOADERS: Final = frozenset(
    {"pandas.read_pickle", "pandas.io.pickle.read_pickle", "yaml.unsafe_load", "yaml.unsafe_load_all",
     "jsonpickle.decode", "jsonpickle.loads", "shelve.open", "torch.package.PackageImporter",
     # YAML's loader classes built by hand (their get_single_data constructs python tags), and
     # torch.hub, which clones a repository and imports its hubconf.py
     "yaml.Loader", "yaml.UnsafeLoader", "yaml.CLoader", "yaml.CUnsafeLoader", "yaml.loader.Loader",
     "yaml.loader.UnsafeLoader", "torch.hub.load", "torch.hub.list", "torch.hub.help"}
)  # fmt: skip
# Their last names, reached as strings (getattr(pd, "read_pickle")): which module is not followed.
_LOADER_ATTRS: Final = frozenset(
    {c.rpartition(".")[2] for c in _CODE_LOADERS} - {"open", "load", "list", "help"}
)
# Loaders that are torch.load under another name.
_TORCH_LOADS: Final = frozenset({"torch.load", "torch.serialization.load"})
# Keywords with which a model or dataset loader runs code it downloads (a repository's modeling
# file, a dataset script) or deserializes (Keras lambdas): doubt unless the literal False/True
# that keeps it from doing so.
_CODE_KEYWORDS: Final[Mapping[str, bool]] = MappingProxyType({"trust_remote_code": False, "safe_mode": True})
# YAML loaders that build no Python objects (FullLoader refuses python/object/apply since 5.4).
_SAFE_YAML_LOADERS: Final = frozenset(
    {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader", "FullLoader", "CFullLoader"}
)
# HTTP clients' module-level fetches, and where the URL is among their arguments (position,
# keyword). Given a literal http(s) URL and only the keywords below, the call connects where the
# URL says (redirects are the egress gate's to decide, as curl -L's are).
_FETCH_CALLS: Final[Mapping[str, int]] = MappingProxyType(
    {
        **{
            f"{m}.{v}": 0
            for m in ("requests", "httpx")
            for v in ("get", "post", "put", "patch", "delete", "head", "options")
        },
        "requests.request": 1,
        "httpx.request": 1,
        "urllib.request.urlopen": 0,
        "urllib.request.urlretrieve": 0,
    }
)  # fmt: skip
_FETCH_KEYWORDS: Final = frozenset(
    {"url", "method", "params", "data", "json", "headers", "timeout", "stream", "allow_redirects",
     "follow_redirects", "verify", "cookies", "files", "auth", "filename", "content"}
)  # fmt: skip
# Members of those modules that fetch nothing: errors, status codes, what the module is.
_CLIENT_MEMBERS: Final = (
    frozenset({"exceptions", "RequestException", "HTTPError", "ConnectionError", "Timeout", "ReadTimeout",
               "ConnectTimeout", "TooManyRedirects", "JSONDecodeError", "codes", "status_codes",
               "HTTPStatusError", "TimeoutException", "RequestError", "error", "URLError",
               "ContentTooShortError", "parse"})
    | _DESCRIPTIONS
)  # fmt: skip
_CLIENT_TOPS: Final = frozenset({"requests", "httpx", "urllib"})
# Calls that change the environment a fetch obeys (a proxy, a CA bundle).
_ENV_WRITERS: Final = frozenset(
    {"os.putenv", "os.environ.update", "os.environ.setdefault", "os.environ.__setitem__", "os.environ.pop"}
)
# SQLite statements that create the file they name (ATTACH, VACUUM INTO), and its native loader.
_SQL_RUNNERS: Final = frozenset({"execute", "executescript", "executemany"})
_SQL_FILES_RE: Final = re.compile(r"(?is)\b(?:attach(?:\s+database)?|into)\s+'((?:[^']|'')*)'")
_SQL_LOAD_RE: Final = re.compile(r"(?i)\bload_extension\s*\(")
# Names of calls that save what they are given into a file named among their arguments.
_WRITING_VERBS: Final = ("save", "to_", "dump", "export", "write_", "imwrite", "imsave", "store", "download")
# Links: writing through one writes what it points at (a link to a folder: files inside it).
_LINK_MAKERS: Final = frozenset({"os.symlink", "os.link"})
# os calls whose second path is a name they create: both are written.
_TWO_PATH_WRITES: Final = frozenset({"os.rename", "os.renames", "os.replace", "os.link", "os.symlink"})
# pathlib methods that return the same file under another spelling (the reading resolves nothing).
_SAME_PATH_METHODS: Final = frozenset({"resolve", "absolute", "expanduser", "as_posix"})
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
     "__context__", "__cause__", "__notes__", "__suppress_context__", "__func__", "__members__",
     "__isabstractmethod__", "__abstractmethods__", "__unittest_skip__", "__unittest_skip_why__",
     "__unittest_expecting_failure__", "__test__", "__origin__", "__args__", "__parameters__",
     "__orig_bases__", "__match_args__", "__type_params__", "__text_signature__", "__package__",
     "__debug__"}
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
# Where a tempfile maker takes dir= by position (mkstemp(suffix, prefix, dir); the file
# classes after mode, buffering, encoding, newline, suffix, prefix); others: 2.
_TEMP_DIR_POSITION: Final = {"NamedTemporaryFile": 6, "TemporaryFile": 6, "SpooledTemporaryFile": 7}
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
_SCRIPT: Final = "./__main__.py"  # __file__: a script in the working directory, as agents run them


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
    # Source spans (line, col, end line, end col) of URL strings that are data only: given to URL
    # parsers or printed, in code that imports nothing unknown and cannot reach the network.
    data_spans: list[tuple[int, int, int, int]] = field(default_factory=list)
    # Every network use is an HTTP client's fetch of a literal URL (``requests.get("https://...")``):
    # the URLs say where it connects, as curl's argv does (``_Reader.mark_literal_fetches``).
    fetches_only: bool = False

    @property
    def understood(self) -> bool:
        return not self.opaque and not self.doubts

    @property
    def computes_only(self) -> bool:
        """Nothing but computation and reads/writes of the files listed."""
        return self.understood and not (self.spawns or self.net or self.secrets)

    @property
    def reviewable(self) -> bool:
        """Computation, the files listed, and fetches of the URLs listed: nothing else."""
        return self.understood and not (self.spawns or self.secrets) and (not self.net or self.fetches_only)


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


def _parsed(code: str | None) -> ast.Module | None:
    try:
        return ast.parse(code) if code is not None else None
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None


def _analyse(code: str, fx: Effects, nested: int) -> None:
    tree = _parsed(code)
    if tree is None:
        tree = _parsed(_rejoined(code))
    if tree is None:
        fx.doubts.append("not Python that can be parsed")
        return
    try:
        _Reader(fx, tree, nested).run(tree)
    except RecursionError:
        fx.doubts.append("code nested too deeply to read")


# Hard keywords that open a compound statement (and ``@``, a decorator): no Python's grammar
# lets one follow ``;``. Soft keywords (``match``, ``case``, ``type``) are names there.
_COMPOUND_STARTS: Final = frozenset(
    {"class", "def", "if", "elif", "else", "for", "while", "try", "except", "finally", "with", "async", "@"}
)


# A file call's path given by keyword: the first path (file, src...) and the second (dst).
_PATH_KEYWORDS: Final = (
    frozenset({"file", "path", "filename", "name", "src", "database", "pathname", "fname"}),
    frozenset({"dst", "destination"}),
)


def _spread(node: ast.Call) -> tuple[list[ast.expr], dict[str, ast.expr]] | None:
    """A call's positional and keyword arguments, with ``*[...]`` and ``**{"k": v}`` of literal
    collections spread out; None when an unpacked collection is not known statically."""
    args: list[ast.expr] = []
    for a in node.args:
        if not isinstance(a, ast.Starred):
            args.append(a)
        elif isinstance(a.value, ast.List | ast.Tuple):
            args.extend(a.value.elts)
        else:
            return None
    keywords: dict[str, ast.expr] = {}
    for k in node.keywords:
        if k.arg is not None:
            keywords[k.arg] = k.value
            continue
        spread = k.value
        if not isinstance(spread, ast.Dict):
            return None
        for key, value in zip(spread.keys, spread.values, strict=True):
            if not isinstance(key, ast.Constant) or not isinstance(key.value, str):
                return None  # **{name: v} or **{**other}: the keys are not known statically
            keywords[key.value] = value
    return args, keywords


def without_data_urls(code: str, fx: Effects) -> str:
    """``code`` with the URLs ``fx`` found to be data only blanked out (for the word-level scan)."""
    if not fx.data_spans:
        return code
    lines = [line.encode("utf-8", "surrogatepass") for line in code.splitlines(keepends=True)]
    for first, start, last, end in fx.data_spans:  # ast columns count UTF-8 bytes
        for n in range(first, min(last, len(lines)) + 1):
            line = lines[n - 1]
            a = start if n == first else 0
            b = end if n == last else len(line.rstrip(b"\r\n"))
            lines[n - 1] = line[:a] + b" " * max(0, b - a) + line[b:]
    return b"".join(lines).decode("utf-8", "replace")


def _parent(path: str, *, dirname: bool = False) -> str:
    """The directory holding ``path`` (``Path.parent``; ``os.path.dirname`` with ``dirname``). A
    relative path's parent above the working directory stays relative, ``..``, for the caller to
    resolve: ``Path.cwd().parent.parent / "etc/cron.d/x"`` is ``../../etc/cron.d/x``, not a file
    in the workspace."""
    if path.startswith("/"):
        return posixpath.dirname(path) if dirname else posixpath.dirname(path.rstrip("/")) or "/"
    p = path.rstrip("/")
    head, sep, tail = p.rpartition("/")
    if tail in ("", "."):
        return f"{head}/.." if head else ".."
    if tail == "..":
        return f"{p}/.."
    return head if sep and head else _CWD


def _rejoined(code: str) -> str | None:
    """``class A: pass; class B: pass; print(A < B)``, as agents write one-liners for ``python -c``:
    no Python runs it (a compound statement never follows ``;``), so the reading that matters is
    the one of every statement in it. Each such ``;`` at bracket depth 0 becomes a line break at
    its line's indentation; what does not parse after that stays a doubt. Never raises."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    lines = code.splitlines(keepends=True)
    cuts: list[tuple[int, int, str]] = []  # (row, col, indentation) of each ``;`` to break at
    depth = 0
    for tok, nxt in itertools.pairwise(tokens):
        if tok.type != tokenize.OP:
            continue
        if tok.string in "([{":
            depth += 1
        elif tok.string in ")]}":
            depth = max(depth - 1, 0)
        elif tok.string == ";" and depth == 0 and nxt.string in _COMPOUND_STARTS:
            line = lines[tok.start[0] - 1]
            cuts.append((tok.start[0], tok.start[1], line[: len(line) - len(line.lstrip(" \t"))]))
    if not cuts:
        return None
    for row, col, indent in reversed(cuts):
        line = lines[row - 1]
        lines[row - 1] = line[:col] + "\n" + indent + line[col + 1 :].lstrip(" \t")
    return "".join(lines)


def _code_keywords(node: ast.Call) -> str | None:
    """``from_pretrained(..., trust_remote_code=True)``: a keyword that makes a loader run code."""
    for k in node.keywords:
        safe = _CODE_KEYWORDS.get(k.arg or "")
        if safe is not None and not (type(k.value) is ast.Constant and k.value.value is safe):
            return f"{k.arg}: the loader runs code it downloads or deserializes"
    return None


def _code_loader(target: str, node: ast.Call, loader_name: str | None = None) -> str | None:
    """Why a call to ``target`` runs code the file or bytes it loads hold, or None.

    numpy's ``allow_pickle`` defaults to False and torch's ``weights_only`` to True (torch 2.6+);
    ``yaml.load`` needs a ``Loader`` (PyYAML 6) and builds no objects with the safe ones."""
    if target in _CODE_LOADERS:
        return "loading it runs code the data holds (pickle or python tags)"
    keywords = {k.arg: k.value for k in node.keywords if k.arg is not None}
    if len(keywords) < len(node.keywords):
        return "loads with keywords not known statically (**kwargs)"
    if target in ("numpy.load", "numpy.lib.npyio.load", "numpy.lib.format.read_array"):
        given = keywords.get(
            "allow_pickle", node.args[2] if target == "numpy.load" and len(node.args) > 2 else None
        )
        if given is not None and not (type(given) is ast.Constant and not given.value):
            return "allow_pickle: loading a pickle runs code"
    elif target in _TORCH_LOADS:
        weights = keywords.get("weights_only")
        if "pickle_module" in keywords:
            return "pickle_module: loads with an unpickler of its own"
        if weights is not None and not (type(weights) is ast.Constant and weights.value is True):
            return "weights_only not True: loading a pickle runs code"
    elif target in ("yaml.load", "yaml.load_all"):
        loader = keywords.get("Loader", node.args[1] if len(node.args) > 1 else None)
        if loader is not None:
            # the loader as the imports name it (yaml.SafeLoader): a class of the code's own
            # called SafeLoader may well derive from UnsafeLoader
            module, _, name = (loader_name or "").rpartition(".")
            if module not in ("yaml", "yaml.loader", "yaml.cyaml") or name not in _SAFE_YAML_LOADERS:
                return f"Loader {name or '(not known statically)'}: python tags run code"
    return None


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
        self.data_calls: set[int] = set()  # ids of calls to DATA_MEMBERS (URL parsers...)
        self.parents: dict[int, ast.AST] | None = None  # child id -> parent, built when needed
        self.data_bases: set[str] = set()  # modules only data members were imported from
        self.dumping_imports: list[str] = []  # "import pickle" evidence this reader added (opaque)
        self.ran_nested = False  # an exec()'d string was read into the same effects
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
                return _SCRIPT
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
            if target == "pathlib.Path.home":
                return "~"
            if node.keywords or len(node.args) > 1:
                return None
            func = node.func
            if target in ("os.path.dirname", "posixpath.dirname") and node.args:
                inner = self.literal(node.args[0])
                return None if inner is None else _parent(inner, dirname=True)
            if target in ("os.path.realpath", "posixpath.realpath") and node.args:
                return self.literal(node.args[0])
            if type(func) is ast.Attribute and func.attr in _SAME_PATH_METHODS and not node.args:
                return self.literal(func.value)  # Path(__file__).resolve(): the same file, for reading
        if isinstance(node, ast.Attribute) and node.attr in ("parent", "resolve"):
            inner = self.literal(node.value)
            if inner is not None and node.attr == "parent":
                return _parent(inner)
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
                    if alias.name.startswith("distutils.") and alias.asname is None:
                        self.fx.doubts.append(
                            f"import {alias.name}: binds distutils, whose other parts spawn"
                        )
                    if alias.asname:
                        self.modules[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        self.modules[top] = top
            elif isinstance(node, ast.ImportFrom):
                base = "." * node.level + (node.module or "")
                self.fx.imports.append(base)
                members = [f"{base}.{a.name}" for a in node.names]
                if node.level == 0 and all(map(is_data_member, members)):
                    self.data_bases.add(base)  # from urllib3.util import parse_url: only the member
                elif node.level == 0:
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
        # exec("subprocess.run(...)"), eval("pickle"): an exec'd string's reader uses the names
        # bound here without knowing them, so no import here is idle when one was read
        if (self.fx.net or self.fx.spawns) and not self.ran_nested:
            self.drop_idle_imports()
        if self.dumping_imports and not self.ran_nested:
            self.drop_dumping_imports()
        if self.fx.net and self.nested == 0 and not self.ran_nested:
            self.fx.fetches_only = self.literal_fetches()
        if self.data_calls and self.nested == 0:  # spans index this text, not an exec()'d string
            self.mark_data_urls()

    def drop_idle_imports(self) -> None:
        """``import MySQLdb; print(MySQLdb.__version__)``, ``import subprocess; print("ok")``: a
        network or process module imported and only asked what it is (its version, file, name),
        or not used at all, connects nowhere and starts nothing; any other use keeps the import."""
        for found in (self.fx.net, self.fx.spawns):
            kept: list[str] = []
            for evidence in found:
                dotted = evidence.removeprefix("import ")
                names = [n for n, t in self.modules.items() if t == dotted or t.startswith(dotted + ".")]
                if evidence == dotted or not names or not all(map(self.only_described, names)):
                    kept.append(evidence)
            found[:] = kept

    def literal_fetches(self) -> bool:
        """Is every network use a fetch of a literal http(s) URL by an HTTP client's module-level
        call (``requests.get``, ``httpx.post``, ``urllib.request.urlopen``)? Every use of a name
        bound to those modules must be such a call or one of their errors and descriptions; any
        other network evidence (a socket, a session, ``.urlopen`` on an unknown object) is not."""
        fx = self.fx
        verified: set[int] = set()
        for node in self.walked:
            if type(node) is ast.Call:
                target = self.dotted(node.func)
                if target in _ENV_WRITERS:
                    return False  # HTTPS_PROXY, REQUESTS_CA_BUNDLE...: the fetch obeys them
                if target is not None and target in _FETCH_CALLS and self.literal_fetch(node, target):
                    verified.add(id(node.func))
            elif type(node) is ast.Subscript and type(node.ctx) is not ast.Load:
                if self.dotted(node.value) == "os.environ":
                    return False
        parents = self.name_parents()
        for node in self.walked:
            if type(node) is ast.Attribute and node.attr in _NET_ATTRS and id(node) not in verified:
                return False
            if type(node) is not ast.Name or type(node.ctx) is not ast.Load:
                continue
            bound = self.modules.get(node.id)
            if bound is None or bound.split(".")[0] not in _CLIENT_TOPS:
                continue
            chain: ast.AST = node  # the outermost attribute of requests.exceptions.HTTPError
            while type(parents.get(id(chain))) is ast.Attribute:
                chain = parents[id(chain)]
            if id(chain) in verified:
                continue
            dotted = self.dotted(chain) or ""
            if is_data_member(dotted) or any(p in _CLIENT_MEMBERS for p in dotted.split(".")[1:]):
                continue
            return False
        for evidence in fx.net:
            dotted = evidence.removeprefix("import ")
            top = dotted.lstrip(".").split(".")[0]
            if evidence.startswith("."):
                continue  # .urlopen: every such attribute was checked above
            if evidence == dotted or top not in _CLIENT_TOPS:
                return False
        return True

    def literal_fetch(self, node: ast.Call, target: str) -> bool:
        """A fetch whose URL is a literal http(s) URL, with only keywords that send data or tune
        the request (no proxies, adapters, transports, hooks or ``**`` options)."""
        if any(type(a) is ast.Starred for a in node.args) or len(node.args) > 3:
            return False
        keywords = {k.arg: k.value for k in node.keywords}
        if None in keywords or not keywords.keys() <= _FETCH_KEYWORDS:
            return False
        at = _FETCH_CALLS[target]
        url_node = node.args[at] if len(node.args) > at else keywords.get("url")
        url = self.literal(url_node) if url_node is not None else None
        if url is None or not url.lower().startswith(("http://", "https://")):
            return False
        if target.endswith("urlretrieve"):  # urlretrieve(url, filename): the file is written
            name_node = node.args[1] if len(node.args) > 1 else keywords.get("filename")
            name = self.literal(name_node) if name_node is not None else None
            if name is None:
                return False
            self.fx.writes.append(name)
        return True

    def drop_dumping_imports(self) -> None:
        """``import pickle; pickle.dump(model, f)``: a serializer imported only to write (its dump,
        dumps, errors and constants) runs nothing it reads. A load, or the module handed on as a
        value, keeps the import's doubt. Only this reader's own imports are judged (an ``exec``'d
        string's reader shares ``fx`` but not the names bound)."""
        fx = self.fx
        for evidence in self.dumping_imports:
            top, _, member = evidence.removeprefix("import ").partition(".")
            safe = _DUMPING_MEMBERS[top]
            if member:
                dropped = member in safe  # from pickle import dumps
            else:
                names = [n for n, t in self.modules.items() if t == top]
                members = [t.partition(".")[2] for t in self.modules.values() if t.startswith(top + ".")]
                dropped = bool(names or members) and all(m in safe for m in members)
                dropped = dropped and all(self.only_members(n, safe) for n in names)
            if dropped and evidence in fx.opaque:
                fx.opaque.remove(evidence)

    def only_members(self, name: str, members: frozenset[str]) -> bool:
        """Is every use of ``name`` an attribute among ``members`` (``pickle.dumps``)?"""
        parents = self.name_parents()
        for node in self.walked:
            if type(node) is ast.Name and node.id == name and type(node.ctx) is ast.Load:
                parent = parents.get(id(node))
                if type(parent) is not ast.Attribute or parent.attr not in members:
                    return False
        return True

    def only_described(self, name: str) -> bool:
        return self.only_members(name, _DESCRIPTIONS)

    def name_parents(self) -> dict[int, ast.AST]:
        if self.parents is None:
            self.parents = {id(c): n for n in self.walked for c in ast.iter_child_nodes(n)}
        return self.parents

    def mark_data_urls(self) -> None:
        """``parse_url("http://user:pass@host")``: a URL only parsed or printed is data, when nothing
        in the code can connect (no network or process use, no import that is not the standard
        library or a parser of a network library, everything read). Its text is then left out of
        the word-level scan that stands in for libraries the reader does not know."""
        fx = self.fx
        if not fx.understood or fx.net or fx.spawns or fx.commands or fx.writes:
            return  # a URL written to a file may be fetched by what reads it (pip install -r)
        known = self.data_bases  # xml.sax and xml.dom.pulldom fetch the URLs they are given
        if not all(
            (i.split(".")[0] in _STDLIB and i.split(".")[0] != "xml") or is_data_member(i) or i in known
            for i in fx.imports
        ):
            return
        parents = self.name_parents()
        spans: dict[str, list[tuple[int, int, int, int]]] = {}
        data: dict[str, bool] = {}
        for const in self.walked:
            if (
                type(const) is not ast.Constant
                or not isinstance(const.value, str)
                or "://" not in const.value
            ):
                continue
            node: ast.AST = const
            holder = parents.get(id(const))
            if type(holder) is ast.JoinedStr:  # f"http://a -> {parse(x)}": the f-string is the use
                node, holder = holder, parents.get(id(holder))
            key = const.value if node is const else ast.dump(node)
            data[key] = data.get(key, True) and self.data_use(node, holder, parents)
            end_line, end_col = getattr(node, "end_lineno", None), getattr(node, "end_col_offset", None)
            if end_line is not None and end_col is not None:
                spans.setdefault(key, []).append(
                    (getattr(node, "lineno", 0), getattr(node, "col_offset", 0), end_line, end_col)
                )
        fx.data_spans = [span for key, ok in data.items() if ok for span in spans.get(key, [])]

    def data_use(self, node: ast.AST, holder: ast.AST | None, parents: dict[int, ast.AST]) -> bool:
        """Is this value given to a URL parser or printed, directly or through one name?"""
        if self.data_arg(holder, parents):
            return True
        if type(holder) is ast.Assign and len(holder.targets) == 1 and type(holder.targets[0]) is ast.Name:
            name = holder.targets[0].id
            uses = [
                n for n in self.walked if type(n) is ast.Name and n.id == name and type(n.ctx) is ast.Load
            ]
            return bool(uses) and all(self.data_arg(parents.get(id(n)), parents) for n in uses)
        return False

    def data_arg(self, holder: ast.AST | None, parents: dict[int, ast.AST]) -> bool:
        if type(holder) is ast.keyword:
            holder = parents.get(id(holder))
        if type(holder) is ast.FormattedValue:
            joined = parents.get(id(holder))
            holder = parents.get(id(joined)) if type(joined) is ast.JoinedStr else None
        if type(holder) is not ast.Call:
            return False
        return id(holder) in self.data_calls or (
            type(holder.func) is ast.Name
            and holder.func.id in ("print", "repr", "str", "len")
            and not holder.keywords
        )

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
        if dotted == "distutils.version" or dotted.startswith("distutils.version."):
            kind = "free"  # LooseVersion and StrictVersion compare version strings
        if top == "importlib" and len(parts) > 1 and parts[1] not in ("metadata", "resources", "util"):
            kind = "opaque" if parts[1] not in ("machinery", "abc") else "free"
        evidence = f"import {dotted}"
        if kind == "net" and is_data_member(dotted):
            return  # from urllib.parse import urlsplit: parsing connects nowhere
        if kind == "spawn":
            self.fx.spawns.append(evidence)
        elif kind == "net":
            self.fx.net.append(evidence)
        elif kind == "opaque":
            self.fx.opaque.append(evidence)
            if top in _DUMPING_MEMBERS and (len(parts) == 1 or (member and len(parts) == 2)):
                self.dumping_imports.append(evidence)
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
        elif dotted == "logging.config.listen":  # a socket server that takes logging configurations
            self.fx.net.append(dotted)
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
        elif (
            name in _OPAQUE_ATTRS
            or name in _LOADER_ATTRS
            or (name.startswith("__") and name not in _SAFE_DUNDERS)
        ):
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
                self.ran_nested = True
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
        if target is not None and is_data_member(target):
            self.data_calls.add(id(node))
            return
        if target is not None and target.startswith(
            ("pandas.", "yaml.", "numpy.", "torch.", "jsonpickle.", "shelve.")
        ):
            loader = next((k.value for k in node.keywords if k.arg == "Loader"), None)
            if loader is None and len(node.args) > 1:
                loader = node.args[1]
            loads = _code_loader(target, node, self.dotted(loader) if loader is not None else None)
            if loads is not None:
                self.fx.opaque.append(f"{target}: {loads}")
        if node.keywords:
            loads = _code_keywords(node)
            if loads is not None:
                self.fx.opaque.append(f"{target or 'a call'}: {loads}")
        if type(func) is ast.Attribute and func.attr in _SQL_RUNNERS and args:
            self.sql(args[0], func.attr)
        if type(func) is ast.Attribute and func.attr == "enable_load_extension":
            self.fx.opaque.append(".enable_load_extension(): SQL may then load native code")
        if target is None:
            if type(func) is ast.Attribute and (
                func.attr in _PATH_READS or func.attr in _PATH_WRITES or func.attr == "open"
            ):
                self.files(node, f"(...).{func.attr}")  # (Path.home() / ".bashrc").write_text(...)
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
            args, keywords = _spread(node) or (node.args, {})  # not spread: path_arg says so
            mode_node = args[mode_pos] if len(args) > mode_pos else keywords.get("mode")
            if mode_node is not None:
                mode = self.literal(mode_node) or "w"
            self.path_arg(node, pos, _WRITE if any(c in mode for c in "wax+") else _READ, target)
            return
        spec = FILE_CALLS.get(target)
        if spec is not None:
            if target in _LINK_MAKERS:  # os.symlink(".", "d"): what is written through it, under "."
                self.path_arg(node, 0, _WRITE, target, under_folder=True)
            else:
                self.path_arg(node, spec[0], spec[1], target)
            if target in _TWO_PATH_WRITES:  # os.rename("x", ".git/hooks/pre-commit"): the new name too
                self.path_arg(node, 1, _WRITE, target)
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
                spread = _spread(node)
                maker = target.rsplit(".", 1)[-1]
                at = _TEMP_DIR_POSITION.get(maker, 2)
                folder = None
                if spread is not None:
                    folder = spread[1].get("dir") or (spread[0][at] if len(spread[0]) > at else None)
                if spread is None:  # mkstemp(**options): its dir= is not known
                    self.fx.opaque.append(
                        f"{target}: arguments unpacked from a collection not known statically"
                    )
                elif folder is None or (type(folder) is ast.Constant and folder.value is None):
                    self.fx.writes.append("/tmp/*")  # noqa: S108 - a new name under /tmp, not /tmp itself
                else:  # mkstemp(dir="/etc/cron.d"): a new file in that folder
                    self.path_value(folder, _WRITE, target, under=True)
            return
        method = target.rsplit(".", 1)[-1]
        if method in ("extractall", "extract") and isinstance(node.func, ast.Attribute):
            # ZipFile(...).extractall(".git/hooks"), tarfile.open(...).extract(m, "/etc")
            spread = _spread(node)
            args, keywords = spread if spread is not None else ([], {})
            dest = keywords.get("path") or (
                args[0 if method == "extractall" else 1] if len(args) > (method == "extract") else None
            )
            if spread is None:
                self.fx.opaque.append(f"{target}: arguments unpacked from a collection not known statically")
            elif dest is None:
                self.fx.writes.append(f"{_CWD}/*")  # what the archive holds, under the working directory
            else:
                self.path_value(dest, _WRITE, target, under=True)
            return
        if method.startswith(_WRITING_VERBS) and method not in _PATH_WRITES:
            self.written_by_name(node, target)
            return
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

    def sql(self, statement: ast.expr, method: str) -> None:
        """``execute("ATTACH DATABASE '/etc/cron.d/x' AS a")``, ``VACUUM INTO '~/.bashrc'``: SQLite
        creates the file the statement names; ``load_extension(...)`` loads native code."""
        text = self.literal(statement)
        if text is None:
            return  # queries are built from data all the time; only what names a file is read
        for m in _SQL_FILES_RE.finditer(text):
            self.fx.writes.append(m.group(1).replace("''", "'"))
        if _SQL_LOAD_RE.search(text):
            self.fx.opaque.append(f".{method}(): load_extension loads native code")

    def written_by_name(self, node: ast.Call, target: str) -> None:
        """``df.to_csv(".git/hooks/pre-commit")``, ``np.savetxt(...)``, ``cv2.imwrite(...)``: a call
        whose name says it saves, exports or dumps writes the literal paths among its arguments
        (what else they are is the library's business; a text with a blank or a line is no path)."""
        spread = _spread(node)
        if spread is None:
            return
        args, keywords = spread
        for value in [*args, *keywords.values()]:
            text = self.literal(value)
            if text is not None and 0 < len(text) < 1024 and not any(c.isspace() for c in text):
                self.fx.writes.append(text)

    def is_path(self, node: ast.AST) -> bool:
        """Is this expression a pathlib path (``Path(...)``, ``p / "x"``, a name bound to one)?"""
        if isinstance(node, ast.Call):
            func = node.func
            if type(func) is ast.Attribute and func.attr in _SAME_PATH_METHODS:
                return self.is_path(func.value)  # Path(__file__).resolve()
            return self.dotted(func) in ("pathlib.Path", "pathlib.PosixPath", "pathlib.PurePath",
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

    def path_arg(
        self, node: ast.Call, pos: int, kind: str, target: str, *, under_folder: bool = False
    ) -> None:
        """The path at ``pos`` (or its keyword); ``under_folder``: a folder spelled ``.``/``..`` or
        ending in ``/`` is written inside (``DIR/*``), not itself."""
        spread = _spread(node)
        if spread is None:
            self.fx.opaque.append(f"{target}: arguments unpacked from a collection not known statically")
            return
        args, keywords = spread
        value = args[pos] if len(args) > pos else None
        if value is None:
            names = _PATH_KEYWORDS[min(pos, 1)]
            value = next((v for k, v in keywords.items() if k in names), None)
        if value is None:
            if pos == 0 and target in ("os.listdir", "os.scandir", "os.walk"):
                (self.fx.reads if kind == _READ else self.fx.writes).append(_CWD)
            return
        if isinstance(value, ast.Constant) and isinstance(value.value, int):
            return  # a file descriptor already open
        text = self.literal(value) if under_folder else None
        folder = text is not None and (text in (".", "..") or text.endswith(("/", "/.", "/..")))
        self.path_value(value, kind, target, under=folder)

    def path_value(self, value: ast.AST, kind: str, target: str, *, under: bool = False) -> None:
        """A literal path read or written (``under``: new files inside that folder, ``DIR/*``)."""
        text = self.literal(value)
        if text is None:
            self.fx.opaque.append(f"{target}: a path not known statically")
        elif text != ":memory:":
            (self.fx.reads if kind == _READ else self.fx.writes).append(
                f"{text.rstrip('/')}/*" if under else text
            )
