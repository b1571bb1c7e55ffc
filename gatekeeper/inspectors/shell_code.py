"""Code handed inline to a program: ``python -c``, ``node -e``, awk programs, sed scripts, tar actions.

Such code cannot be reviewed from the command line the way argv can, so it is always
``proc.inline_code:<program>`` (which policies escalate). It is still read, best
effort: URLs and hosts, mining pools, process-spawning and socket calls, and quoted
string literals that look like command lines (parsed with the shell inspector itself,
depth-limited), so that an inline ``os.system("ssh -R ...")`` is denied, not merely escalated.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
import shlex
from typing import TYPE_CHECKING, Final

from gatekeeper.inspectors import python_code, shell_runs
from gatekeeper.inspectors.paths import CODE_ROOTS
from gatekeeper.inspectors.shell_options import remote
from gatekeeper.inspectors.shell_programs import (
    STDIN_EXEC,
    Word,
    family,
    fs,
    has_space,
    is_secret_name,
    is_stdin_path,
    literal_text,
    parse_opts,
)
from gatekeeper.inspectors.shell_tables import TABLES, module_capabilities

if TYPE_CHECKING:
    from gatekeeper.inspectors.shell import Inspection

__all__ = ["HANDLERS", "sed_script"]

_STRING_RE: Final = re.compile(r"\"((?:[^\"\\]|\\.)*)\"|'((?:[^'\\]|\\.)*)'|`((?:[^`\\]|\\.)*)`", re.S)
_ESCAPE_RE: Final = re.compile(r"\\(.)", re.S)
_JOINER_RE: Final = re.compile(r"[\s,\[\](){}+]*")
_COMMAND_LIKE_RE: Final = re.compile(r"[A-Za-z0-9_./~-]+(?:\s|$)")
_IPV4_RE: Final = re.compile(r"(?<![\w.])(\d{1,3}(?:\.\d{1,3}){3})(?![\w.])")
_HOST_PORT_RE: Final = re.compile(
    r"[\"']([A-Za-z0-9][A-Za-z0-9.\-]*|\d{1,3}(?:\.\d{1,3}){3})[\"']\s*,\s*(\d{1,5})\b"
)
_HOSTPORT_STRING_RE: Final = re.compile(
    r"[\"']((?:[A-Za-z0-9-]+\.)+[A-Za-z0-9-]+|\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})[/\"']"
)
# Code that fetches something and runs it: exec(urlopen(...).read()), eval(requests.get(...).text)...
_FETCH_RE: Final = re.compile(
    r"urlopen|urllib|requests\.(?:get|post)|http\.client|httpx|fetch\(|https?\.get\(|Net::HTTP|open-uri|"
    r"LWP::|HTTP::Tiny|file_get_contents\(\s*[\"']https?:|curl_exec|socket\.recv|\.recv\("
)
_RUN_FETCHED_RE: Final = re.compile(
    r"\b(?:exec|eval|compile|instance_eval|new\s+Function|vm\.run\w*)\s*[\(\s]"
)
_PORT_HOST_RE: Final = re.compile(r"\b(\d{1,5})\s*,\s*[\"'](\d{1,3}(?:\.\d{1,3}){3})[\"']")
_SPAWN_RE: Final = re.compile(
    r"os\s*\.\s*(?:system|popen|exec\w*|spawn\w*|posix_spawn\w*|fork)|subprocess|pty\s*\.\s*spawn|"
    r"commands\s*\.\s*getoutput|child_process|exec(?:Sync|File|FileSync)?\s*\(|spawn(?:Sync)?\s*\(|"
    r"\bsystem\s*\(|\bsystem\s+[\"'`$]|popen|proc_open|shell_exec|passthru|pcntl_exec|\bqx\b|"
    r"Kernel\s*\.\s*(?:system|spawn|exec)|IO\s*\.\s*popen|Open3|%x[\[({]|Runtime\s*\.\s*getRuntime|`",
)
_MAX_STRINGS: Final = 64
_MAX_CODE: Final = 16 * 1024
MAX_CODE: Final = _MAX_CODE  # inline code longer than this is not scanned word by word


def _unescape(text: str) -> str:
    return _ESCAPE_RE.sub(lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), text)


def command_strings(code: str) -> list[str]:
    """String literals that may be command lines: each alone, and runs of adjacent ones joined.

    ``["ssh", "-R", "1:a:2", "h"]`` and ``spawn("ssh", ["-R", ...])`` become one command line.
    """
    out: list[str] = []
    group: list[str] = []
    end = -1
    for m in _STRING_RE.finditer(code):
        if len(out) >= _MAX_STRINGS:
            break
        text = _unescape(next(g for g in m.groups() if g is not None))
        if group and not _JOINER_RE.fullmatch(code, end, m.start()):
            if len(group) > 1:
                out.append(" ".join(group))
            group = []
        group.append(text)
        end = m.end()
        if _COMMAND_LIKE_RE.match(text) and any(c.isspace() for c in text.strip()):
            out.append(text)
    if len(group) > 1:
        out.append(" ".join(group))
    return out


def path_strings(code: str) -> list[str]:
    """Quoted absolute or home-relative paths in code (``open("/proc/self/environ")``)."""
    out: list[str] = []
    for m in _STRING_RE.finditer(code):
        text = _unescape(next(g for g in m.groups() if g is not None))
        if text.startswith(("/", "~")) and 1 < len(text) < 1024 and not has_space(text):
            out.append(text)
        if len(out) >= _MAX_STRINGS:
            break
    return out


def scan_code(insp: Inspection, name: str, code: str, depth: int, *, spawn_words: bool = True) -> None:
    """What inline code (any language) may do; ``proc.inline_code:<name>`` is the caller's.

    ``spawn_words=False``: the code was read with a parser that already says whether it starts
    processes, so words such as ``subprocess`` in its strings prove nothing."""
    evidence = f"{name}: {code}"
    if len(code) > _MAX_CODE:
        insp.opaque(f"inline code too long to inspect: {evidence}")
        return
    insp.scan([Word(code)])
    if spawn_words and _SPAWN_RE.search(code):
        insp.add("proc.spawn", evidence)
    for m in _HOST_PORT_RE.finditer(code):
        if "." in m.group(1) or m.group(1) == "localhost":
            insp.connect(m.group(1), m.group(2), evidence)
    for m in _PORT_HOST_RE.finditer(code):
        insp.connect(m.group(2), m.group(1), evidence)
    for m in _HOSTPORT_STRING_RE.finditer(code):
        insp.connect(m.group(1), m.group(2), evidence)
    if _FETCH_RE.search(code) and _RUN_FETCHED_RE.search(code):
        insp.add("net.download_exec", f"inline code fetches and evaluates: {evidence}")
    for m in _IPV4_RE.finditer(code):
        insp.host_class(m.group(1), evidence)
    for text in path_strings(code):
        insp.read_path(Word(text), evidence)
    for text in command_strings(code):
        insp.nested_command(text, depth + 1)


def python_effects(insp: Inspection, name: str, fx: python_code.Effects, evidence: str, depth: int) -> None:
    """Capabilities of what Python code was read to do (``python_code.analyse``)."""
    evidence = evidence[:160]
    if not fx.reviewable:  # more than computing, literal files and literal fetches: inline code
        why = "; ".join([*fx.doubts, *fx.opaque, *fx.spawns, *fx.net, *fx.secrets][:3])
        insp.add(f"proc.inline_code:{name}", f"{evidence} ({why})")
    for why in fx.opaque[:1]:
        insp.opaque(f"{name} code: {why}")
    for path in fx.reads:
        insp.read_path(Word(path), f"{name} code reads {path}: {evidence}")
    for path in fx.writes:
        insp.write_target(Word(path), f"{name} code writes {path}: {evidence}")
        if fx.net and fx.fetches_only:  # urlretrieve(URL, "x.sh"), open("x.py", "w").write(r.text)
            insp.remember_download(path)
    if fx.spawns:
        insp.add("proc.spawn", f"{name} code starts processes ({fx.spawns[0]}): {evidence}")
    for cmd in fx.commands[:16]:
        insp.nested_command(cmd, depth + 1)
    if fx.net and not fx.fetches_only:
        insp.add(f"proc.inline_code:{name}", f"{name} code uses the network ({fx.net[0]}): {evidence}")
    for url in fx.urls[:16]:
        insp.scan([Word(url)])
    for host, port in fx.endpoints[:16]:
        insp.connect(host, port, evidence)
    for secret in fx.secrets:
        insp.add("cred.env", f"{name} code reads the secret variable {secret}")
    for module in fx.imports[:256]:  # import sshuttle.cmdline; import pyrx: a tunnel's, a miner's
        for cap in module_capabilities(module, imported=True):
            insp.add(cap, f"{name} code imports {module}: {evidence}")


def python_inline(insp: Inspection, name: str, code: str, depth: int) -> None:
    """Python given inline, read with ``ast``: code that only computes and touches literal paths
    adds nothing but those paths; anything else is its capability, or doubt."""
    if len(code) > _MAX_CODE:
        insp.add(f"proc.inline_code:{name}", f"{name}: inline code too long to read")
        scan_code(insp, name, code, depth)
        return
    fx = python_code.analyse(code)
    python_effects(insp, name, fx, f"{name}: {code}", depth)
    scan_code(insp, name, python_code.without_data_urls(code, fx), depth, spawn_words=not fx.understood)
    for module in fx.imports[:64]:  # python3 -c 'import x': the workspace's x.py runs (written_code)
        insp.ran_files.update(shell_runs.module_paths(insp, module))


def inline(
    insp: Inspection,
    name: str,
    code: Word | None,
    depth: int,
    *,
    as_command: bool = False,
    hook: bool = False,
    python: bool = False,
) -> set[str]:
    """Record code given inline to ``name``; ``as_command`` code is a command line, parsed as one.

    ``hook``: an option that makes a non-interpreter run a command (tar's checkpoint actions,
    sed's ``e``, ``rg --pre``): ``proc.exec_hook:<program>`` too, which policies deny.
    """
    evidence = f"{name} {code.text if code else ''}"
    if python and not hook and not as_command and code is not None and code.literal:
        text = literal_text(insp, code, f"{name} inline code")
        if text is not None:
            python_inline(insp, name, text, depth)
            return set()
    insp.add(f"proc.inline_code:{name}", evidence)
    if hook:
        insp.add(f"proc.exec_hook:{family(name)}", evidence)
    text = literal_text(insp, code, f"{name} inline code")
    if text is None:
        return set()
    if as_command:
        return set(insp.source(text, depth + 1))
    scan_code(insp, name, text, depth)
    return set()


# -- interpreters -------------------------------------------------------------
# Per interpreter: short options whose value is code, short options taking some other
# value (which ends a cluster), long options whose value is code, other long options with values.
_CODE_SHORT: Final[dict[str, tuple[str, str, frozenset[str], frozenset[str]]]] = {
    "python": ("c", "WXm", fs("--command"), fs("--check-hash-based-pycs")),
    "pypy": ("c", "WXm", fs(), fs()),
    "node": ("ep", "rC", fs("--eval", "--print"), fs("--require", "--import", "--input-type", "--loader")),
    "perl": ("eE", "IiMmlxCd0", fs(), fs()),
    "ruby": ("e", "rICEFx", fs(), fs("--encoding", "--external-encoding", "--internal-encoding")),
    "php": ("rBRFE", "cdfzt", fs(), fs()),
    "lua": ("e", "l", fs(), fs()),
}
_PERL_MODULE_RE: Final = re.compile(r"-?[A-Za-z0-9_:]+(?:=[A-Za-z0-9_:,]*)?")


def interpreter_code(insp: Inspection, fam: str, name: str, args: list[Word], depth: int) -> bool:
    """Inline code of python/node/perl/ruby/php/lua; True if the program text is given inline."""
    spec = _CODE_SHORT.get(fam)
    if spec is None:
        return False
    code_short, value_short, code_long, value_long = spec
    found = False
    i = 0
    while i < len(args):
        w, t = args[i], args[i].text
        if not w.literal:
            insp.opaque(f"{name}: non-literal option {t}")
            return True
        if t in ("-", "--") or not t.startswith("-") or len(t) < 2:
            break
        if t.startswith("--"):
            key, eq, val = t.partition("=")
            nxt = Word(val) if eq else (args[i + 1] if i + 1 < len(args) else None)
            if key in code_long:
                found = True
                inline(insp, name, nxt, depth, python=fam == "python")
            i += 1 if eq or key not in (code_long | value_long) else 2
            continue
        j = 1
        stop = False
        while j < len(t):
            c = t[j]
            if c in code_short or c in value_short:
                val_word = (
                    Word(t[j + 1 :]) if j + 1 < len(t) else (args[i + 1] if i + 1 < len(args) else None)
                )
                if j + 1 == len(t):
                    i += 1
                if c in code_short:
                    found = True
                    inline(insp, name, val_word, depth, python=fam == "python")
                elif fam == "perl" and c in "Mm" and val_word is not None:
                    if not val_word.literal or not _PERL_MODULE_RE.fullmatch(val_word.text):
                        found = True
                        inline(insp, name, val_word, depth)
                elif fam == "python" and c == "m":
                    stop = True
                break
            j += 1
        i += 1
        if stop or (fam == "python" and found):
            break
    return found


# -- awk, sed, tar, rg, make, package runners ----------------------------------
_AWK_VALUES: Final = fs(
    "-F",
    "-v",
    "-f",
    "-e",
    "-i",
    "-l",
    "-E",
    "-W",
    "--field-separator",
    "--assign",
    "--file",
    "--source",
    "--include",
    "--load",
    "--exec",
)
_AWK_OUTPUT_RE: Final = re.compile(r"\bprintf?\b[^;}\n]*?>>?\s*\"([^\"]+)\"")
_AWK_CODE_RE: Final = re.compile(r"system|getline|(?<!\|)\|(?!\|)|@load|@include|\bprintf?\b[^;}\n]*>")


def awk_runs_code(program: str) -> bool:
    """An awk program that may run commands, read or write files, or read the environment; any
    other only computes on its input (what the awk handler has nothing to say about)."""
    return _AWK_CODE_RE.search(program) is not None or _AWK_ENVIRON_RE.search(program) is not None


# Lines awk reads from a clean start (neither the program's first line, which a source given
# before it may continue, nor one after a line ending in a backslash, which continues a string or
# regex) that are a syntax error in every awk (gawk, mawk, BWK awk, busybox): a quote or backtick
# before anything that could open a string, regex or comment (``"``, ``/``, ``#``, ``\\``); a
# ``)``, ``]`` or ``|`` first on the line; an odd number of ``"`` on a line free of ``/``, ``#`` and
# ``\\`` (a string left open at the end of its line: a Python docstring's ``"""``). Every awk parses
# the whole program before it runs any of
# it, so nothing of such a text runs; but gawk's ``@load`` and ``@include`` act while it parses (a
# library loaded, a file read into its error messages): text that may hold one is never proved so.
_AWK_SYNTAX_ERROR_RE: Final = re.compile(
    r"^(?:[^#\"/\\\n`']*[`']|[ \t]*[)\]|]"
    r"|[^#\"/\\\n]*\"(?:[^#\"/\\\n]*\"[^#\"/\\\n]*\")*[^#\"/\\\n]*$)",
    re.MULTILINE,
)
_AWK_PARSE_ACTION_RE: Final = re.compile(r"@[\s\\]*(?:load|include)", re.IGNORECASE)


def awk_refuses(program: str) -> bool:
    """True only if every awk refuses ``program`` before running any of it (a syntax error that
    no source given before it can mend); False: it may run."""
    if _AWK_PARSE_ACTION_RE.search(program):
        return False
    for m in _AWK_SYNTAX_ERROR_RE.finditer(program):
        start = m.start()
        if start and not program[program.rfind("\n", 0, start - 1) + 1 : start - 1].rstrip().endswith("\\"):
            return True
    return False


# Where a language reads the whole environment (every secret in it), and where one named variable.
_AWK_ENVIRON_RE: Final = re.compile(r"\bENVIRON\b(?:\s*\[\s*\"([A-Za-z_][A-Za-z0-9_]*)\"\s*\])?")
_JQ_ENV_RE: Final = re.compile(
    r"(?<![\w.$\"])env\b(?!\s*:|\")(?:\s*\.\s*([A-Za-z_][A-Za-z0-9_]*))?"  # not {env: ...} nor "env"
    r"|\$ENV\b(?:\s*\.\s*([A-Za-z_][A-Za-z0-9_]*))?"
)


def environment_dump(insp: Inspection, name: str, code: str, pattern: re.Pattern[str]) -> None:
    """``awk 'BEGIN{for (k in ENVIRON) ...}'``, ``jq -n env``: code that reads every variable is
    ``cred.env`` (as ``env`` alone is); one variable by a literal name is one only if it is a secret."""
    for m in pattern.finditer(code):
        var = next((g for g in m.groups() if g), None)
        if var is None or is_secret_name(var):
            insp.add(
                "cred.env",
                f"{name} reads {'the variable ' + var if var else 'the whole environment'}: {m.group()}",
            )
            return


_JQ_IMPORT_RE: Final = re.compile(r"\b(?:import|include)\s+\"([^\"]*)\"(\s+as\s+\$)?")


def jq(insp: Inspection, name: str, args: list[Word]) -> None:
    """jq's ``env`` and ``$ENV`` are the environment: a filter that prints them prints secrets.
    ``import "p" as $x`` reads ``p.json`` and ``import``/``include "p"`` reads ``p.jq``, from the
    working directory or a ``-L`` directory: files read."""
    search = [w for i, w in enumerate(args) if i and args[i - 1].text == "-L"]
    search += [Word(w.text[2:], w.literal) for w in args if w.text.startswith("-L") and len(w.text) > 2]
    for w in args:
        if w.literal and not w.text.startswith("-"):
            environment_dump(insp, name, w.text, _JQ_ENV_RE)
            for m in _JQ_IMPORT_RE.finditer(w.text):
                module = m.group(1) + (".json" if m.group(2) else ".jq")
                for base in [Word("."), *search]:
                    if not base.literal:
                        insp.opaque(f"{name}: a module search directory not known statically")
                        continue
                    path = module if module.startswith("/") else posixpath.join(base.text, module)
                    insp.read_path(Word(path), f"{name} {m.group()}")


def awk(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """The program (first operand unless ``-f``/``-e``) runs commands through system(), pipes, getline."""
    p = parse_opts(args, _AWK_VALUES)
    programs = [v for o, v in p.opts if o in ("-e", "--source") and v is not None]
    has_file = any(o in ("-f", "--file", "-E", "--exec") for o, _ in p.opts)
    if not programs and not has_file and p.pos:
        programs = [p.pos[0]]
    ran: set[str] = set()
    for o, v in p.opts:
        if o in ("-l", "--load"):
            inline(insp, name, v, depth)
        elif (
            o in ("-f", "--file", "-E", "--exec", "-i", "--include")
            and v is not None
            and is_stdin_path(v.text)
        ):
            insp.add(f"proc.inline_code:{name}", f"{name} {o} {v.text}: the program is read from a stream")
            ran.add(STDIN_EXEC)
    for w in programs:
        if w.literal:
            environment_dump(insp, name, w.text, _AWK_ENVIRON_RE)
        if not w.literal:
            insp.opaque(f"{name}: program not known statically: {w.text}")
        elif _AWK_CODE_RE.search(w.text):
            inline(insp, name, w, depth)
            for m in _AWK_OUTPUT_RE.finditer(w.text):
                insp.write_target(Word(m.group(1)), f"{name} {m.group()}")
    return ran


def sed_script(script: str, added: list[str] | None = None) -> tuple[list[str], list[str], list[str], bool]:
    """A sed script's commands it would execute, files it reads and writes; False if not understood.
    ``added`` collects the text it puts into its output (``a``/``i``/``c`` lines, ``s`` replacements)."""
    added = [] if added is None else added
    execs: list[str] = []
    reads: list[str] = []
    writes: list[str] = []
    s, n, i = script, len(script), 0

    def rest_of_line(k: int) -> tuple[str, int]:
        end = s.find("\n", k)
        end = n if end < 0 else end
        return s[k:end].strip(), end

    def delimited(k: int, delim: str) -> int:
        while k < n and s[k] != delim:
            if s[k] == "\\":
                k += 1
            elif s[k] == "\n":
                return -1
            k += 1
        return k if k < n else -1

    def address(k: int) -> int:
        if k < n and s[k] in "/\\":
            if s[k] == "\\":
                k += 1
                if k >= n:
                    return -1
            end = delimited(k + 1, s[k])
            if end < 0:
                return -1
            k = end + 1
            while k < n and s[k] in "IM":
                k += 1
            return k
        while k < n and (s[k].isdigit() or s[k] in "$~+"):
            k += 1
        return k

    while i < n:
        while i < n and (s[i].isspace() or s[i] == ";"):
            i += 1
        if i >= n:
            break
        if s[i] == "#":
            _, i = rest_of_line(i)
            continue
        i = address(i)
        if 0 <= i < n and s[i] == ",":
            i = address(i + 1)
        if i < 0:
            return execs, reads, writes, False
        while i < n and (s[i].isspace() or s[i] == "!"):
            i += 1
        if i >= n:
            return execs, reads, writes, False
        c = s[i]
        i += 1
        if c in "{}=dDgGhHnNpPxzF":
            continue
        if c in "aic":  # text to the end of the line; ``a\`` text continues while lines end in \\
            while i < n and s[i] in " \t":
                i += 1
            if i + 1 < n and s[i] == "\\" and s[i + 1] == "\n":
                i += 2
            while True:
                line, i = rest_of_line(i)
                added.append(line.rstrip("\\"))
                trailing = len(line) - len(line.rstrip("\\"))
                if trailing % 2 == 0 or i >= n:
                    break
                i += 1
        elif c in ":btTv":
            while i < n and s[i] not in ";\n}":
                i += 1
        elif c in "lLqQ":
            while i < n and (s[i].isdigit() or s[i] == " "):
                i += 1
        elif c in "rRwW":
            target, i = rest_of_line(i)
            (reads if c in "rR" else writes).append(target)
        elif c == "e":
            command, i = rest_of_line(i)
            execs.append(command)
        elif c in "sy":
            if i >= n or s[i] in "\n\\":
                return execs, reads, writes, False
            delim = s[i]
            mid = delimited(i + 1, delim)
            end = delimited(mid + 1, delim) if mid >= 0 else -1
            if end < 0:
                return execs, reads, writes, False
            replacement = s[mid + 1 : end]
            if c == "s":  # what sed puts there: the delimiter and newlines unescaped
                added.append(replacement.replace("\\" + delim, delim).replace("\\n", "\n"))
            i = end + 1
            while c == "s" and i < n and s[i] not in ";\n}#" and not s[i].isspace():
                if s[i] == "e":
                    execs.append(replacement)
                elif s[i] == "w":
                    target, i = rest_of_line(i + 1)
                    writes.append(target)
                    break
                elif not (s[i].isdigit() or s[i] in "gpiImM"):
                    return execs, reads, writes, False
                i += 1
        else:
            return execs, reads, writes, False
    return execs, reads, writes, True


_SED_VALUES: Final = fs("-e", "-f", "--expression", "--file", "-l", "--line-length")


def sed(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """``sed -i`` writes its files; the script's ``e`` command and ``s///e`` run commands; r/w touch files."""
    p = parse_opts(args, _SED_VALUES)
    names = [o for o, _ in p.opts]
    scripted = any(o in ("-e", "--expression", "-f", "--file") for o in names)
    scripts = [v for o, v in p.opts if o in ("-e", "--expression") and v is not None]
    files = p.pos if scripted else p.pos[1:]
    if not scripted and p.pos:
        scripts = [p.pos[0]]
    in_place = any(o == "--in-place" or (o == "-i" or o.startswith("-i")) for o in names) or any(
        w.text.startswith("-") and not w.text.startswith("--") and "i" in w.text[1:] for w in args
    )
    if in_place:
        for w in files:
            insp.write_target(w, f"sed -i {w.text}")
    ran: set[str] = set()
    for o, v in p.opts:
        if o in ("-f", "--file") and v is not None and is_stdin_path(v.text):
            insp.add(f"proc.inline_code:{name}", f"{name} {o} {v.text}: the script is read from a stream")
            ran.add(STDIN_EXEC)
    if any(o == "--sandbox" for o in names):
        return ran
    for w in scripts:
        if not w.literal:
            insp.opaque(f"{name}: script not known statically: {w.text}")
            continue
        added: list[str] = []
        execs, reads, writes, understood = sed_script(w.text, added)
        if in_place and added:  # sed -i '1a import os; ...' x.py: that text is in x.py now
            for f in files:
                if f.literal:
                    insp.remember_added(f.text, "\n".join(added))
        if not understood:
            insp.add(f"proc.inline_code:{name}", f"{name} script not understood: {w.text}")
        for command in execs:
            ran |= inline(insp, name, Word(command or w.text), depth, as_command=bool(command), hook=True)
        for target in reads:
            insp.read_path(Word(target), f"{name} {w.text}")
        for target in writes:
            insp.write_target(Word(target), f"{name} {w.text}")
    return ran


# Every tar option that takes a value, from its table: a value is never mistaken for an option
# (``tar --label --force-local -cf h:x`` labels the archive "--force-local"; it stays remote).
_TAR_VALUES: Final = frozenset(k for k, o in TABLES["tar"].options.items() if o.value)
_TAR_COMMANDS: Final = fs("--to-command", "--rsh-command", "--info-script", "--new-volume-script", "-F")
_TAR_PROGRAMS: Final = fs("-I", "--use-compress-program")
_COMPRESSORS: Final = fs(
    "gzip",
    "pigz",
    "bzip2",
    "pbzip2",
    "lbzip2",
    "xz",
    "pixz",
    "zstd",
    "pzstd",
    "lz4",
    "lzip",
    "lzma",
    "lzop",
    "brotli",
)


def tar(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """``--checkpoint-action=exec=``, ``--to-command``, ``-I PROG``, ``--rsh-command`` run commands."""
    ran: set[str] = set()
    parsed = parse_opts(args, _TAR_VALUES)
    archives = [v for o, v in parsed.opts if o in ("-f", "--file")]
    if "--force-local" not in (o for o, _ in parsed.opts):
        for v in archives:  # GNU tar's _remdev: a colon before any slash is [user@]host:path, over rsh
            remote(insp, v, f"{name} -f {v.text if v is not None else ''}: an archive on another host")
    _tar_writes(insp, name, parsed.opts, archives)
    given = {o for o, _ in parsed.opts}
    if given & _TAR_EXTRACTS and not given & _TAR_TO_STDOUT:  # tar -xf a.tar .git/hooks/x: lands there
        into = [v for o, v in parsed.opts if o in ("-C", "--directory") and v is not None]
        base = into[-1] if into else Word(".")
        for member in parsed.pos:
            if member.literal and not member.text.startswith("-"):
                target = Word(posixpath.join(base.text, member.text.lstrip("/")), base.literal)
                insp.write_target(target, f"{name} extracts {member.text}")
    for o, v in parsed.opts:
        if o == "--checkpoint-action" and v is not None:
            action = literal_text(insp, v, "tar --checkpoint-action")
            if action is not None and action.startswith("exec="):
                ran |= inline(insp, name, Word(action[5:]), depth, as_command=True, hook=True)
        elif o in _TAR_COMMANDS:
            ran |= inline(insp, name, v, depth, as_command=True, hook=True)
        elif o in _TAR_PROGRAMS and v is not None and v.literal and v.text.split(" ")[0] in _COMPRESSORS:
            ran |= insp.source(v.text, depth + 1)
        elif o in _TAR_PROGRAMS:
            ran |= inline(insp, name, v, depth, as_command=True, hook=True)
    return ran


_TAR_ARCHIVE_WRITES: Final = fs(
    "-c", "--create", "-r", "--append", "-u", "--update", "-A", "--catenate", "--concatenate", "--delete"
)
_TAR_EXTRACTS: Final = fs("-x", "--extract", "--get")
_TAR_TO_STDOUT: Final = fs("-O", "--to-stdout", "--to-command")


def _tar_writes(
    insp: Inspection, name: str, opts: list[tuple[str, Word | None]], archives: list[Word | None]
) -> None:
    """What tar writes: the archive it creates or changes, and the directory it extracts into
    (``-C``, else where it runs), as ``fs.write`` like any other write."""
    given = {o for o, _ in opts}
    if given & _TAR_ARCHIVE_WRITES:
        for archive in archives:
            if archive is not None and archive.text != "-":
                insp.write_target(archive, f"{name} writes the archive {archive.text}")
    if given & _TAR_EXTRACTS and not given & _TAR_TO_STDOUT:
        into = [v for o, v in opts if o in ("-C", "--directory")]
        where = into[-1] if into else Word(".")
        if where is None:
            insp.opaque(f"{name} extracts into a directory not known statically")
            return
        # Every member lands under it: one representative path stands for them.
        insp.write_target(
            Word(where.text.rstrip("/") + "/*", where.literal), f"{name} extracts into {where.text}"
        )
    # A member renamed by --transform lands at the name its replacement gives (.git/hooks/x) when it
    # is extracted, from this archive or (made with the names) from a later one: written there, so
    # that the git directory, a dotfile... is seen as it would be written by name.
    into = [v for o, v in opts if o in ("-C", "--directory")]
    base = into[-1] if into and into[-1] is not None else Word(".")
    for o, v in opts:
        if o in ("--transform", "--xform") and v is not None:
            for target in _transform_targets(v.text) if v.literal else [None]:
                if target is None:
                    insp.opaque(f"{name} {o}: member names not known statically")
                elif target:
                    evidence = f"{name} {o}={v.text}: members renamed into {target}"
                    insp.write_target(Word(posixpath.join(base.text, target), base.literal), evidence)


def _transform_targets(expression: str) -> list[str | None]:
    """The replacement texts of tar's ``s/REGEX/REPL/FLAGS`` expressions (``;``-separated), without
    a leading slash (tar strips it); None when one is not understood or refers to the match."""
    out: list[str | None] = []
    i, n = 0, len(expression)
    while i < n:
        if expression[i] != "s" or i + 1 >= n:
            return [*out, None]
        delim = expression[i + 1]
        fields: list[str] = []
        k, current = i + 2, ""
        while k < n and len(fields) < 2:
            ch = expression[k]
            if ch == "\\" and k + 1 < n:
                nxt = expression[k + 1]
                current += nxt if nxt == delim else ch + nxt
                k += 2
                continue
            if ch == delim:
                fields.append(current)
                current = ""
            else:
                current += ch
            k += 1
        if len(fields) < 2:
            return [*out, None]
        repl = fields[1]
        out.append(None if "&" in repl or "\\" in repl else repl.lstrip("/"))
        end = expression.find(";", k)
        i = n if end < 0 else end + 1
    return out


# Names that stand for the secret files of a workspace (paths.credential_classes): a search
# restricted to files named like one of them is a read of that file.
_SECRET_EXAMPLES: Final = (
    ".env", ".env.production", ".env.local", "id_rsa", "id_ed25519", "server.key", "cert.pem", "x.p12",
    ".netrc", ".pgpass", ".git-credentials", ".pypirc", ".npmrc", ".vault-token",
)  # fmt: skip
_GLOB_LITERAL_RE: Final = re.compile(r"[^*?\[\]{}]{3,}")


def search_globs(insp: Inspection, name: str, args: list[Word]) -> None:
    """``grep -r --include='.env*'``, ``rg -g '*.pem'``: a search of the files named like secrets
    reads them (``cred.secret``, as ``grep x .env`` is); a glob not known statically is doubt."""
    for i, w in enumerate(args):
        key, eq, value = w.text.partition("=")
        if key not in ("--include", "-g", "--glob", "--iglob"):
            if not (w.text.startswith("-g") and len(w.text) > 2 and not w.text.startswith("--")):
                continue
            key, value, eq = "-g", w.text[2:], "="
        glob = value if eq else (args[i + 1].text if i + 1 < len(args) else "")
        literal = w.literal and (bool(eq) or (i + 1 < len(args) and args[i + 1].literal))
        if not literal:
            insp.opaque(f"{name} {w.text}: which files are searched is not known statically")
            continue
        if glob.startswith("!"):
            continue  # rg's exclusion
        parts = _GLOB_LITERAL_RE.findall(glob.rsplit("/", 1)[-1])
        low = glob.lower().rsplit("/", 1)[-1]
        for example in _SECRET_EXAMPLES:
            if parts and all(p.lower() in example for p in parts) and fnmatch.fnmatchcase(example, low):
                evidence = f"{name} {w.text} {'' if eq else glob}: searches files named like {example}"
                insp.add("cred.secret", evidence)
                break


def rg(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """``rg --pre CMD`` runs CMD on every file searched."""
    search_globs(insp, name, args)
    ran: set[str] = set()
    for i, w in enumerate(args):
        if w.text == "--pre" or w.text.startswith("--pre="):
            value = (
                Word(w.text[6:], w.literal) if "=" in w.text else (args[i + 1] if i + 1 < len(args) else None)
            )
            insp.add(f"proc.inline_code:{name}", f"{name} {w.text}")
            insp.add(f"proc.exec_hook:{family(name)}", f"{name} {w.text}")
            text = literal_text(insp, value, "rg --pre")
            if text:
                ran |= insp.run([Word(text)], depth + 1)
    return ran


# make's options that take a value (also what ``make -C`` is found among).
MAKE_VALUES: Final = fs("-f", "--file", "--makefile", "-C", "--directory", "-I", "-j", "-l", "-o", "-W", "-E")


_MAKE_VALUE_LETTERS: Final = frozenset("CfIjloWE")  # -Cp is -C p: the letters after take the value


def make(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """``make -f -``/``-f /dev/stdin`` runs recipes from stdin; ``--eval`` is makefile text inline;
    ``-p`` prints make's database, every environment variable with its value among it."""
    p = parse_opts(args, MAKE_VALUES)
    ran: set[str] = set()
    for w in args:
        t = w.text
        cluster = re.fullmatch(r"-[a-zA-Z]*p[a-zA-Z]*", t) is not None
        if t.startswith("--print-da") or (cluster and not set(t[1 : t.index("p")]) & _MAKE_VALUE_LETTERS):
            insp.add("cred.env", f"{name} {t}: prints every variable, the environment's secrets included")
            break
    for o, v in p.opts:
        if o in ("-f", "--file", "--makefile") and v is not None and is_stdin_path(v.text):
            insp.add(f"proc.inline_code:{name}", f"{name} {o} {v.text}")
            ran.add(STDIN_EXEC)
        elif o in ("--eval", "-E"):
            ran |= inline(insp, name, v, depth)
    return ran


# C and C++ compiler drivers. Options that take the next word as their value; of them, those
# that name a file written. Everything else that is no option is a source, object or library read.
_COMPILER_VALUES: Final = fs(
    "-o", "-I", "-L", "-D", "-U", "-x", "-include", "-imacros", "-isystem", "-iquote", "-idirafter",
    "-iprefix", "-iwithprefix", "-isysroot", "-MF", "-MT", "-MQ", "-T", "-u", "-e", "-Xlinker",
    "-Xassembler", "-Xpreprocessor", "-Xclang", "-B", "-specs", "--specs", "-wrapper", "-aux-info",
    "--sysroot", "-target", "--target", "-arch", "-l", "-MJ", "-dumpdir", "-dumpbase", "-dumpbase-ext",
    "-ivfsoverlay", "--config", "-ccc-install-dir", "-iwithprefixbefore",
)  # fmt: skip
_COMPILER_WRITES: Final = fs("-o", "-MF", "-aux-info", "-MJ", "-dumpdir", "-dumpbase")
# What -Wl,/-Wa,/-Wp, and -Xlinker/-Xassembler/-Xpreprocessor hand the linker, assembler or
# preprocessor: options of another program, read here only when they are known to name no file
# written (-Wl,-o,.git/hooks/x, -Wl,-Map=, -Wp,-MD,f, -Wa,-a=f) and load nothing (-Wl,-plugin,
# @file). Their values (a -rpath folder, a -z keyword) are words without a dash.
_PASSED_SAFE: Final = fs(
    "-rpath", "-rpath-link", "-z", "--as-needed", "--no-as-needed", "--gc-sections", "--no-undefined",
    "--whole-archive", "--no-whole-archive", "--start-group", "--end-group", "-Bstatic", "-Bdynamic",
    "-Bsymbolic", "-soname", "-h", "--export-dynamic", "-E", "-O1", "-O2", "-s", "--strip-all",
    "--build-id", "--enable-new-dtags", "--disable-new-dtags", "--allow-multiple-definition",
    "-D_FORTIFY_SOURCE=2", "-D_FORTIFY_SOURCE=3", "--noexecstack", "-x", "-S", "--hash-style=gnu",
    "--hash-style=both", "--eh-frame-hdr", "--icf=all", "-pie", "--no-warn-execstack",
)  # fmt: skip
_PASSED: Final = {"-Xlinker": "-Wl,", "-Xassembler": "-Wa,", "-Xpreprocessor": "-Wp,"}
# -f options whose value (or, without one, the output's name) is a file or folder written:
# dumps, profiles, remarks, traces, module caches. The output's folder is -o's, checked; a value
# naming a folder of its own is doubt.
_F_WRITES: Final = (
    "-fdump-", "-fprofile-generate", "-fprofile-dir", "-fprofile-instr-generate", "-ftime-trace",
    "-fmodules-cache-path", "-fopt-info", "-foptimization-record-file", "-fsave-optimization-record",
    "-fcallgraph-info", "-fprofile-update", "-fcoverage-", "-fcrash-diagnostics-dir", "-fprofile-note",
    "-fprofile-prefix-path", "-fmodule-output", "-fmodules-output", "-fprebuilt-module-path",
    "-fmodule-file", "-fmodule-map-file", "-fprofile-use", "-fauto-profile", "-fsanitize-blacklist",
    "-fsanitize-ignorelist", "-fprofile-instr-use", "-fprofile-sample-use", "-fprofile-list", "-fxray-",
)  # fmt: skip
COMPILERS: Final = frozenset({"gcc", "g++", "cc", "c++", "clang", "clang++", "c89", "c99"})


def compiler(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """``gcc x.c -o x``: reads its sources, writes ``-o``'s file. Flags that load or run code
    (a plugin, ``-B`` program directory, ``-wrapper``, a specs file, a linker by path or its
    plugins: the same rule as ``CFLAGS``) and response files (``@opts``: options nothing here
    read) are doubt. The sources it compiles run when the program does: a call that compiles
    inherits what ``file.write`` recorded for the C, C++ and assembly of the workspace."""
    from gatekeeper.inspectors.shell_options import compiler_flags  # it imports this module

    texts = [w.text for w in args]
    compiler_flags(insp, name, " ".join(texts), all(w.literal for w in args))
    i = 0
    while i < len(args):
        w, t = args[i], texts[i]
        passed = _PASSED[t] + (texts[i + 1] if i + 1 < len(args) else "@") if t in _PASSED else t
        if passed.startswith(("-Wl,", "-Wa,", "-Wp,")):
            items = passed[4:].split(",")
            if any(x.startswith("@") or (x.startswith("-") and x not in _PASSED_SAFE) for x in items):
                insp.opaque(
                    f"{name} {t}: options of the linker, assembler or preprocessor that may write or load"
                )
        elif t.startswith("-f") and "=" in t and t.startswith(_F_WRITES):
            insp.opaque(f"{name} {t}: a file or folder the compiler writes or reads beside its operands")
        if t.startswith("@"):
            insp.opaque(f"{name} {t}: options read from a file")
        elif t in _COMPILER_VALUES and i + 1 < len(args):
            if t in _COMPILER_WRITES:
                insp.write_target(args[i + 1], f"{name} {t} {texts[i + 1]}")
            i += 2
            continue
        elif t.startswith("-o") and len(t) > 2:
            insp.write_target(Word(t[2:], w.literal), f"{name} {t}")
        elif t.startswith("-MF") and len(t) > 3:
            insp.write_target(Word(t[3:], w.literal), f"{name} {t}")
        elif t.startswith("-MJ") and len(t) > 3:
            insp.write_target(Word(t[3:], w.literal), f"{name} {t}")
        elif t != "-" and not t.startswith("-"):
            insp.read_path(w, f"{name} {t}")
            _compiled_operand(insp, name, w)
        elif t == "-":
            insp.opaque(f"{name} -: compiles code from its input, which nothing here read as C")
        i += 1
    insp.ran_files.update(shell_runs.tree(root, shell_runs.COMPILED_KINDS) for root in CODE_ROOTS)
    return set()


# What the C, C++ and assembly records of the workspace cover (written_code's kinds c, asm and
# object), and shared libraries with a version (libx.so.1).
_COMPILED_SUFFIX_RE: Final = re.compile(
    r"\.(?:c|h|cc|cpp|cxx|c\+\+|hh|hpp|hxx|h\+\+|m|mm|inc|ipp|tpp|s|sx|asm|o|a|so(?:\.[0-9]+)*)$"
)


def _compiled_operand(insp: Inspection, name: str, w: Word) -> None:
    """``gcc -x assembler notes.txt``: a file of the workspace compiled although its name says it
    is no C, C++ or assembly was recorded as text, not as what the compiler reads it as."""
    if not w.literal or _COMPILED_SUFFIX_RE.search(w.text.lower()):
        return
    if any(p.startswith(CODE_ROOTS) for p in insp.resolve(w.text, w.text, strict=False)):
        insp.opaque(f"{name} {w.text}: compiled, though its name says it is no C, C++ or assembly")


_RUNNERS: Final[dict[str, tuple[str, ...]]] = {
    "npx": (),
    "bunx": (),
    "pnpx": (),
    "uvx": (),
    "npm": ("exec", "x"),
    "pnpm": ("dlx", "exec"),
    "yarn": ("dlx",),
    "bun": ("x",),
    "pipx": ("run",),
    "uv": ("tool",),
}


# ``npm init NAME`` / ``npm create NAME`` / ``yarn create NAME`` run the package create-NAME (npm
# exec); without a NAME, ``npm init`` only writes package.json.
_INITIALIZERS: Final[dict[str, tuple[str, ...]]] = {
    "npm": ("init", "create", "innit"),
    "yarn": ("create",),
    "pnpm": ("create",),
    "bun": ("create",),
}


def package_runner(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """npx and friends download a package and run it: code nobody has reviewed."""
    verbs = _RUNNERS[name.lower()]
    operands = [w.text for w in args if not w.text.startswith("-")]
    first = operands[0] if operands else None
    initializer = first in _INITIALIZERS.get(name.lower(), ()) and len(operands) > 1
    if not verbs or first in verbs or initializer:
        insp.add(f"proc.inline_code:{name}", " ".join([name, *(w.text for w in args)]))
    return set()


_RUN_VALUES: Final = fs(
    "--with",
    "--with-requirements",
    "--python",
    "-p",
    "--project",
    "--directory",
    "--env-file",
    "--extra",
    "--group",
    "--index",
    "--index-url",
    "--package",
    "-C",
    "--directory",
    "-e",
    "--env",
)


def project_runner(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """``uv run``/``poetry run``/``pdm run``/``pipenv run``/``hatch run`` CMD: CMD runs in the project."""
    texts = [w.text for w in args]
    if name.lower() == "uv" and "run" not in texts[:1]:
        return package_runner(insp, name, args, depth)
    at = next((i for i, t in enumerate(texts) if t == "run"), None)
    if at is None:
        return set()
    p = parse_opts(args[at + 1 :], _RUN_VALUES, max_pos=0)
    if p.unknown is not None:
        insp.opaque(f"{name} run: cannot tell which program runs past {p.unknown.text}")
        return set()
    for o, v in p.opts:
        if o in ("--index", "--index-url") and v is not None:
            insp.scan([v])
    rest = args[at + 1 + p.index :]
    return set(insp.run(rest, depth + 1)) if rest else set()


# Modules that read Python (or debugger commands that run it) from stdin: a console, asyncio's
# REPL, pdb's command prompt.
_PY_STDIN_MODULES: Final = fs("code", "asyncio", "pdb", "idlelib", "IPython", "ptpython", "bpython")


def _python_reads_stdin(args: list[Word]) -> bool:
    """``python3 -i x.py`` (a prompt after the script), ``python3 -m code`` / ``-m pdb x.py``: code
    arrives on stdin as well."""
    for i, w in enumerate(args):
        t = w.text
        if not t.startswith("-") or t.startswith("--") or t == "-":
            return False
        for k, ch in enumerate(t[1:], 1):
            if ch == "i":
                return True
            if ch == "m":
                module = t[k + 1 :] or (args[i + 1].text if i + 1 < len(args) else "")
                return module.split(".")[0] in _PY_STDIN_MODULES
            if ch in "cWXQ":
                break  # the rest of the word (or the next one) is this option's value
        if t[1:2] in ("c",):
            return False
        if t in ("-W", "-X", "-Q"):
            continue
    return False


def interpreter(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """python/perl/ruby/node read their program from stdin unless given code, a module or a file."""
    fam = family(name)
    if interpreter_code(insp, fam, name, args, depth):
        return {STDIN_EXEC} if fam == "python" and _python_reads_stdin(args) else set()
    if fam == "python" and _python_reads_stdin(args):
        return {STDIN_EXEC}
    for w in args:
        t = w.text
        if t == "-":
            break
        if t.startswith("-"):
            if t[1:2] in ("c", "m", "e", "E", "p", "r"):
                return set()
            continue
        if w.literal and is_stdin_path(t):  # python3 /dev/stdin: the program arrives as a stream
            if fam != "python":  # Python's is read where it comes from (a here-document, a pipe)
                insp.add(f"proc.inline_code:{name}", f"{name} {t}: the program is read from a stream")
            return {STDIN_EXEC}
        return set()
    return {STDIN_EXEC}


def sphinx_build(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """The linkcheck builder connects to every link in the documents: not known statically."""
    texts = [w.text for w in args]
    for i, t in enumerate(texts):
        value = t.partition("=")[2] if t.startswith("--builder=") else None
        if t in ("-b", "-M", "--builder") and i + 1 < len(texts):
            value = texts[i + 1]
        elif t.startswith(("-b", "-M")) and len(t) > 2 and not t.startswith("--"):
            value = t[2:]
        if value is not None and (value == "linkcheck" or not args[min(i + 1, len(args) - 1)].literal):
            insp.opaque(f"{name} -b {value}: the builder may connect to any link in the documents")
    return set()


# The tools of a Go distribution; ``go tool NAME`` for any other NAME runs a module's tool (a
# ``tool`` line of go.mod: a dependency's code). pprof -http and trace serve a web page.
_GO_TOOLS: Final = frozenset(
    "addr2line asm buildid cgo compile covdata cover dist distpack doc fix link nm objdump pack pprof "
    "preprofile test2json trace vet".split()
)


def go(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """``go run mod/path@version`` downloads a module and runs it (as npx does); ``go tool X``
    runs a tool; ``go tool pprof -http``/``go tool trace`` start a web server."""
    operands = [w for w in args if not w.text.startswith("-")]
    if not operands:
        return set()
    verb, rest = operands[0].text, operands[1:]
    evidence = " ".join([name, *(w.text for w in args)])
    if verb == "run" and any("@" in w.text for w in rest[:1]):
        insp.add(f"proc.inline_code:{name}", f"{evidence}: a module downloaded and run")
    elif verb == "tool" and rest:
        tool = rest[0].text
        if not rest[0].literal or tool not in _GO_TOOLS:
            insp.add(f"proc.inline_code:{name}", f"{evidence}: a module's tool runs")
        elif tool == "trace" or (tool == "pprof" and any(w.text.startswith("-http") for w in args)):
            insp.add("net.listen", f"{evidence}: serves a web page")
    return set()


# cmake -E: the commands that run a program, that write their last operand, that only read.
_CMAKE_E_WRITES: Final = fs(
    "copy", "copy_if_different", "copy_directory", "copy_directory_if_different", "rename",
    "create_symlink", "create_hardlink", "touch", "touch_nocreate", "make_directory", "remove",
    "remove_directory", "rm", "tar", "true", "false",
)  # fmt: skip
_CMAKE_E_READS: Final = fs(
    "cat", "compare_files", "echo", "echo_append", "md5sum", "sha1sum", "sha224sum", "sha256sum",
    "sha384sum", "sha512sum", "capabilities", "environment", "sleep",
)  # fmt: skip
# Cache variables that name a program or a cmake script the configuration runs: a compiler, a
# launcher, a linker, a toolchain or an included file, a checker run on every source, an emulator.
_CMAKE_CODE_VAR_RE: Final = re.compile(
    r"[A-Z0-9_]*(?:COMPILER|LAUNCHER|LINKER|TOOLCHAIN_FILE|INCLUDE|INCLUDE_BEFORE|MAKE_PROGRAM|CLANG_TIDY|"
    r"CPPCHECK|CPPLINT|INCLUDE_WHAT_YOU_USE|LINK_WHAT_YOU_USE|EMULATOR|RULES_OVERRIDE|MODULE_PATH|"
    r"EXECUTABLE|COMMAND|PROGRAM)(?:_[A-Z0-9_]+)?(?::[A-Z]+)?",
    re.I,
)


def cmake(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """``cmake -E env|time|chdir DIR CMD...`` runs CMD; ``-E copy a b`` writes b; ``-DVAR=...``
    naming a program or a script the configuration runs (a compiler, a launcher, a toolchain
    file, an include) is doubt."""
    for i, w in enumerate(args):
        t = w.text
        if t.startswith("-D"):
            var = (t[2:] or (args[i + 1].text if i + 1 < len(args) else "")).partition("=")[0]
            if not w.literal or _CMAKE_CODE_VAR_RE.fullmatch(var):
                insp.opaque(f"{name} {t}: a cache variable naming a program or script the build runs")
            elif var.upper().partition(":")[0] == "CMAKE_INSTALL_PREFIX" and "=" in t:
                insp.write_target(Word(t.partition("=")[2], w.literal), f"{name} {t}: install writes there")
    at = next((i for i, w in enumerate(args) if w.text == "-E"), None)
    if at is None or at + 1 >= len(args):
        return set()
    command, rest = args[at + 1], args[at + 2 :]
    evidence = " ".join([name, *(w.text for w in args)])
    if command.text in ("env", "time", "chdir"):
        if command.text == "chdir":
            rest = rest[1:]  # the directory: the command runs there
        if command.text == "env":
            while rest and (rest[0].text.startswith("-") or "=" in rest[0].text):
                if "=" in rest[0].text and not rest[0].text.startswith("-"):
                    insp.assignment(rest[0], depth)
                rest = rest[1:]
        return set(insp.run(rest, depth + 1)) if rest else set()
    operands = [w for w in rest if not w.text.startswith("-")]
    if command.text in _CMAKE_E_WRITES:
        for w in operands[-1:] if command.text.startswith(("copy", "rename", "create_")) else operands:
            insp.write_target(w, evidence)
        for w in operands[:-1] if command.text.startswith(("copy", "rename", "tar")) else []:
            insp.read_path(w, evidence)
    elif command.text in _CMAKE_E_READS:
        for w in operands if command.text not in ("echo", "echo_append", "sleep") else []:
            insp.read_path(w, evidence)
    else:
        insp.opaque(f"{evidence}: a cmake -E command not in its table")
    return set()


# pytest -o KEY=VALUE: keys whose value pytest reads as more options, as modules or files to
# import, or as a directory it writes; any other key is a setting.
_PYTEST_INI_OPTIONS: Final = fs("addopts")
_PYTEST_INI_DOUBT: Final = fs(
    "python_files",
    "pythonpath",
    "required_plugins",
    "testpaths",
    "rootdir",
    "confcutdir",
    "plugins",
    "usefixtures",
    "consider_namespace_packages",
)  # fmt: skip  (norecursedirs only leaves directories out)
_PYTEST_INI_WRITES: Final = fs("cache_dir", "junit_logging", "log_file")


def pytest(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """``--cov-report=TYPE:PATH`` writes PATH; ``-o addopts=...`` are more options (read as given
    to pytest); ``-o python_files=*.txt``, ``pythonpath=...`` change what is imported: doubt."""
    evidence = " ".join([name, *(w.text for w in args)])
    for i, w in enumerate(args):
        key, eq, value = w.text.partition("=")
        if not eq and i + 1 < len(args) and key in ("--cov-report", "-o", "--override-ini"):
            value, eq = args[i + 1].text, "="
            w = Word(w.text, w.literal and args[i + 1].literal)
        elif key.startswith("-o") and len(key) > 2 and not key.startswith("--"):
            key, value, eq = "-o", w.text[2:], "="
        if not eq or key not in ("--cov-report", "-o", "--override-ini"):
            continue
        if not w.literal:
            insp.opaque(f"{evidence}: {key} not known statically")
        elif key == "--cov-report":
            _, colon, path = value.partition(":")
            if colon and path:
                insp.write_target(Word(path), evidence)
        else:
            ini, _, setting = value.partition("=")
            ini = ini.strip().lower()
            if ini in _PYTEST_INI_OPTIONS:
                try:
                    words = [Word(t) for t in shlex.split(setting)]
                except ValueError:
                    insp.opaque(f"{evidence}: {value} not understood")
                    continue
                insp.run([Word("pytest"), *words], depth + 1)  # as if given to pytest itself
            elif ini in _PYTEST_INI_WRITES:
                insp.write_target(Word(setting), evidence)
            elif ini in _PYTEST_INI_DOUBT:
                insp.opaque(f"{evidence}: -o {ini} changes what pytest imports")
    return set()


def tox(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """``tox exec -- CMD`` runs CMD in an environment; for the other verbs the words after ``--``
    replace ``{posargs}`` in the configured commands, which may be the whole command
    (``commands = {posargs:pytest}``): read as a command unless they start with an option."""
    at = next((i for i, w in enumerate(args) if w.text == "--"), None)
    if at is None or at + 1 >= len(args):
        return set()
    rest = args[at + 1 :]
    verb = next((w.text for w in args[:at] if not w.text.startswith("-")), None)
    if verb in ("exec", "e") or not rest[0].text.startswith("-"):
        return set(insp.run(rest, depth + 1))
    return set()


def grep(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    search_globs(insp, name, args)
    return set()


HANDLERS: Final = {
    "sphinx-build": sphinx_build,
    **{n: grep for n in ("grep", "egrep", "fgrep")},
    "tox": tox,
    "go": go,
    "pytest": pytest,
    "py.test": pytest,
    "cmake": cmake,
    **{n: interpreter for n in ("python", "pypy", "perl", "ruby", "node", "php", "lua")},
    **{n: awk for n in ("awk", "gawk", "mawk", "nawk", "busybox-awk")},
    **{n: package_runner for n in _RUNNERS},
    **{n: project_runner for n in ("uv", "poetry", "pdm", "pipenv", "hatch", "rye")},
    "sed": sed,
    "gsed": sed,
    "tar": tar,
    "gtar": tar,
    "bsdtar": tar,
    "rg": rg,
    "make": make,
    "gmake": make,
    **dict.fromkeys(COMPILERS, compiler),
}
