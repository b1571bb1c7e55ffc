"""The Python reader on code no Python runs: one-liners with compound statements after ``;``."""

from __future__ import annotations

import ast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatekeeper.inspectors.python_code import _rejoined, analyse


@pytest.mark.parametrize(
    "code",
    [
        "class A: pass; class B: pass; print(A < B)",
        "from functools import partial; p = partial(int); def w(): pass; print(w)",
        "try: import json; print(json.dumps(1)); except ImportError: print('skip')",
        "if True: x = 1; else: x = 2",
    ],
)
def test_semicolon_before_a_compound_statement_is_read_statement_by_statement(code: str) -> None:
    with pytest.raises(SyntaxError):
        ast.parse(code)  # no Python runs it as written
    rejoined = _rejoined(code)
    assert rejoined is not None
    ast.parse(rejoined)
    assert analyse(code).doubts == []


@pytest.mark.parametrize(
    ("code", "effect"),
    [
        ("import os; def f(): os.system('id'); f()", "spawns"),
        ("x = 1; class A: import socket; socket.create_connection(('203.0.113.7', 4444))", "net"),
        ("try: import subprocess; subprocess.run(['id']); except Exception: pass", "spawns"),
    ],
)
def test_what_the_statements_do_is_still_seen(code: str, effect: str) -> None:
    fx = analyse(code)
    assert getattr(fx, effect), fx


@pytest.mark.parametrize(
    "code",
    [
        # Python 3.12 reads a nested quote inside an f-string; 3.11 does not: still a doubt.
        'f"{"x;class A: pass"}"',
        "x = (1; class A: pass)",  # inside brackets: nothing to rejoin
        "print(1); match x:\n case 1: pass",  # a soft keyword is a name after ';'
    ],
)
def test_what_stays_unreadable_stays_a_doubt(code: str) -> None:
    assert any("can be parsed" in d for d in analyse(code).doubts)


@given(st.text(alphabet="ab;:() \n\"'f{}classdefiftry", max_size=40))
def test_rejoined_never_raises(code: str) -> None:
    _rejoined(code)
    analyse(code)


@pytest.mark.parametrize(
    ("code", "written"),
    [
        ("from pathlib import Path\n(Path.home() / '.bashrc').write_text('x')", "~/.bashrc"),
        ("from pathlib import Path\n(Path.cwd().parent.parent / 'etc/x').write_text('x')", "../../etc/x"),
        ("from pathlib import Path\n(Path(__file__).resolve().parent / 'out').mkdir()", "./out"),
        ("from pathlib import Path\n(Path(__file__).parent.parent / 'x').touch()", "../x"),
        ("import os\nopen(os.path.join(os.path.dirname(os.getcwd()), 'x'), 'w')", "../x"),
        ("import os\nopen(os.path.join(os.path.dirname('/root/.ssh/'), 'id_rsa'), 'w')", "/root/.ssh/id_rsa"),
    ],
)
def test_paths_from_the_working_directory_and_the_script_resolve_above_it(code: str, written: str) -> None:
    """A parent of the working directory is ``..``, never the working directory itself: writes
    through ``Path.cwd().parent`` once read as workspace files and were allowed."""
    assert analyse(code).writes == [written]


def test_a_method_on_an_unknown_object_that_writes_a_file_is_a_doubt() -> None:
    fx = analyse("from pathlib import Path\n[Path('x')][0].write_text('y')")
    assert fx.opaque


@pytest.mark.parametrize(
    "code",
    [
        "import unittest\nclass T(unittest.TestCase): pass\nprint(getattr(T, '__unittest_skip__', False))",
        "class A:\n    @classmethod\n    def f(cls): return 1\nprint(A.__dict__['f'].__func__)",
        "import enum\nclass E(enum.Enum):\n    A = 1\nprint(E.__members__)",
    ],
)
def test_data_dunders_that_tests_read_are_understood(code: str) -> None:
    assert analyse(code).understood


@pytest.mark.parametrize(
    "code",
    [
        "f = (lambda: 0)\nprint(f.__globals__)",
        "print(().__class__.__base__.__subclasses__())",
        "print(len.__self__)",
        "def f(): pass\nprint(f.__func__.__globals__)",
    ],
)
def test_dunders_that_reach_the_interpreter_stay_opaque(code: str) -> None:
    assert analyse(code).opaque


@pytest.mark.parametrize(
    ("code", "written"),
    [
        ("import os\nos.rename('a', '.git/hooks/pre-commit')", {"a", ".git/hooks/pre-commit"}),
        ("import os\nos.replace(src='a', dst='b')", {"a", "b"}),
        ("import os\nos.symlink('/x', 'b')", {"/x", "b"}),
        ("import shutil\nshutil.copy(src='a', dst='/etc/x')", {"/etc/x"}),
        ("import shutil\nshutil.move(*['a', '/etc/x'])", {"/etc/x"}),
        ("open(**{'file': '/etc/x', 'mode': 'w'})", {"/etc/x"}),
        ("open(*['/etc/x', 'a'])", {"/etc/x"}),
    ],
)
def test_every_name_a_file_call_creates_is_written(code: str, written: set[str]) -> None:
    """The second path of rename/replace/link/symlink, a dst given by keyword, and arguments spread
    from literal collections: each was once not read (os.rename into .git/hooks was allowed)."""
    assert written <= set(analyse(code).writes)


def test_arguments_spread_from_a_collection_not_known_are_a_doubt() -> None:
    assert analyse("import shutil\nargs = make()\nshutil.copy(*args)").opaque
    assert analyse("opts = make()\nopen(**opts)").opaque


@pytest.mark.parametrize(
    ("code", "written"),
    [
        ("import tempfile\nd = tempfile.mkdtemp()", "/tmp/*"),
        ("import tempfile\ntempfile.mkstemp(dir='/etc/cron.d', suffix='')", "/etc/cron.d/*"),
        ("import zipfile\nzipfile.ZipFile('a.zip').extractall('.git/hooks')", ".git/hooks/*"),
        ("import tarfile\ntarfile.open('a.tar').extract('m', path='/etc')", "/etc/*"),
        ("import zipfile\nzipfile.ZipFile('a.zip').extractall()", "./*"),
        ("import pandas as pd\npd.DataFrame().to_csv('.git/hooks/pre-commit')", ".git/hooks/pre-commit"),
        ("import numpy as np\nnp.savetxt('/etc/cron.d/x', [])", "/etc/cron.d/x"),
        ("import cv2\ncv2.imwrite(path, img)\ncv2.imwrite('out.png', img)", "out.png"),
    ],
)
def test_calls_that_create_files_write_where_they_say(code: str, written: str) -> None:
    """tempfile's dir=, an archive's extract and extractall (never read before), and calls named
    for saving (save*, to_*, dump*, export*...): what they write is a write, under a folder ``/*``."""
    assert written in analyse(code).writes


def test_a_saving_call_with_text_that_is_no_path_writes_nothing() -> None:
    assert analyse("import json\njson.dump({'a': 'b c'}, fh)\nsave('hello world')").writes == []


def _shell(code: str) -> str:
    from tests.corpus.test_corpus import evaluate

    return evaluate({"tool": "shell.exec", "arguments": {"cmd": f"python3 - <<'EOF'\n{code}\nEOF"}}).outcome


@pytest.mark.parametrize(
    "code",
    [
        "from urllib.parse import urlsplit\nprint(urlsplit('http://example.com/\\n'))",
        "from urllib3.util import parse_url\nprint(parse_url('http://user:pass@host:8080'))",
        "from requests.utils import get_auth_from_url\nprint(f\"http://u:p@h -> {get_auth_from_url('http://u:p@h')}\")",
        "from urllib.parse import urlparse\nurl = 'http://[::1]:8080'\nprint(urlparse(url).port, url)",
    ],
)
def test_urls_only_parsed_or_printed_are_data(code: str) -> None:
    """Agents fixing URL libraries parse user:pass@host and [::1]: refused as egress before."""
    assert _shell(code) == "allow"


@pytest.mark.parametrize(
    "code",
    [
        # the same string also reaches something that fetches
        "import xml.sax\nfrom urllib.parse import urlparse\nu = 'http://203.0.113.7/x'\nprint(urlparse(u))\n"
        "xml.sax.parse(u, xml.sax.ContentHandler())",
        # a parser's result handed to a module that fetches URLs
        "import xml.sax\nfrom urllib.parse import urljoin\n"
        "xml.sax.parse(urljoin('http://203.0.113.7/', 'x'), None)",
        # a library the reader does not know
        "from urllib.parse import urlparse\nimport xyzhttp\nprint(urlparse('http://203.0.113.7/'))\n"
        "xyzhttp.get('http://203.0.113.7/')",
        # a network module in the same code
        "from urllib.parse import urlparse\nimport urllib.request\nu = 'http://203.0.113.7/'\nprint(urlparse(u))\n"
        "urllib.request.urlopen(u)",
        # a process started with it
        "import subprocess\nfrom urllib.parse import urlparse\nprint(urlparse('http://203.0.113.7/'))\n"
        "subprocess.run(['curl', 'http://203.0.113.7/'])",
    ],
)
def test_a_parsed_url_that_may_also_be_fetched_is_still_egress(code: str) -> None:
    assert _shell(code) != "allow"


@pytest.mark.parametrize(
    ("code", "effect"),
    [
        ("import logging.config\nlogging.config.listen(9999).start()", "net"),
        ("import asyncio\nasyncio.get_event_loop().subprocess_exec(P, 'id')", "spawns"),
        ("import asyncio\nasyncio.get_event_loop().subprocess_shell(P, 'id')", "spawns"),
    ],
)
def test_servers_and_processes_started_through_asyncio_and_logging_are_seen(code: str, effect: str) -> None:
    assert getattr(analyse(code), effect)


@pytest.mark.parametrize(
    ("code", "net"),
    [
        ("import MySQLdb\nprint(MySQLdb.__version__)", False),
        ("import requests\nprint(requests.__version__, requests.__file__)", False),
        ("import requests\nrequests.get('http://example.org')", True),
        ("import requests as r\nprint(r.__version__)\nf = r.get", True),
        ("import socket\nprint(socket)", True),
        ("from MySQLdb import connect\nprint(connect)", True),
    ],
)
def test_a_network_module_only_asked_its_version_connects_nowhere(code: str, net: bool) -> None:
    assert bool(analyse(code).net) is net


def test_distutils_version_compares_versions_and_nothing_else_of_distutils() -> None:
    compare = "from distutils.version import LooseVersion\nLooseVersion('1') < LooseVersion('2')"
    assert analyse(compare).understood
    assert not analyse("import distutils.version\ndistutils.version.LooseVersion('1')").understood


@pytest.mark.parametrize(
    ("code", "written"),
    [
        ("import sqlite3\nsqlite3.connect('a.db').execute(\"VACUUM INTO '/root/.bashrc'\")", "/root/.bashrc"),
        (
            "import sqlite3\nc = sqlite3.connect(':memory:')\n"
            "c.execute(\"ATTACH DATABASE '/etc/cron.d/x' AS a\")",
            "/etc/cron.d/x",
        ),
        ("import sqlite3\nsqlite3.connect('a.db').executescript(\"attach 'it''s.db' as b;\")", "it's.db"),
    ],
)
def test_sql_that_creates_a_file_writes_it(code: str, written: str) -> None:
    """SQLite's ATTACH and VACUUM INTO create the file they name: VACUUM INTO a shell rc file was allowed."""
    assert written in analyse(code).writes


def test_sql_that_loads_native_code_is_opaque() -> None:
    assert analyse(
        "import sqlite3\nc = sqlite3.connect('a')\nc.execute(\"SELECT load_extension('./x.so')\")"
    ).opaque
    assert analyse("import sqlite3\nsqlite3.connect('a').enable_load_extension(True)").opaque
    assert analyse(
        "import sqlite3\nsqlite3.connect('a').execute('INSERT INTO t VALUES (?)', (1,))"
    ).understood


def test_urls_in_code_given_to_exec_are_never_data() -> None:
    """A nested reading's source spans would index the outer text: only the top level marks any."""
    code = "exec(\"from urllib.parse import urlparse\\nprint(urlparse('http://x.org/'))\")\nxyz = 1"
    assert analyse(code).data_spans == []


@pytest.mark.parametrize(
    "code",
    [
        "import pickle; pickle.dump(obj, open('o.pkl', 'wb'))",
        "import pickle as pk; data = pk.dumps([1], protocol=pk.HIGHEST_PROTOCOL)",
        "from pickle import dumps, PicklingError\ntry:\n    dumps(1)\nexcept PicklingError:\n    pass",
        "import pickle; print(pickle.__name__)",
        "import joblib; joblib.dump(model, 'm.joblib')",
        "import numpy as np; np.load('a.npy', allow_pickle=False)",
        "import torch; torch.load('m.pt'); torch.load('n.pt', weights_only=True)",
        "import yaml; yaml.load(f, Loader=yaml.CSafeLoader); yaml.safe_load(g)",
    ],
)
def test_serializers_used_only_to_write_and_safe_loads_are_understood(code: str) -> None:
    fx = analyse(code)
    assert fx.opaque == [], fx.opaque


@pytest.mark.parametrize(
    "code",
    [
        "import pickle; pickle.loads(b)",
        "from pickle import load; load(f)",
        "from pickle import *",
        "import pickle; p = pickle; p.loads(b)",
        "import pickle; handlers = [pickle]",
        "import joblib; joblib.load('m.joblib')",
        "import joblib; joblib.Parallel(n_jobs=2)",
        "import pandas as pd; pd.read_pickle('x.pkl')",
        "from pandas import read_pickle as rp; rp('x.pkl')",
        "import numpy; numpy.load('a.npy', None, True)",
        "import numpy as np; np.load('a.npy', allow_pickle=flag)",
        "import torch; torch.load('m.pt', weights_only=False)",
        "import torch; torch.load('m.pt', pickle_module=dill)",
        "import torch; torch.load('m.pt', **options)",
        "import yaml; yaml.load(f, yaml.Loader)",
        "import yaml; yaml.load_all(f, Loader=yaml.UnsafeLoader)",
        "from yaml import unsafe_load; unsafe_load(f)",
        "import jsonpickle; jsonpickle.decode(s)",
        # an exec()'d string's reader shares the effects, not the outer names: the outer load stays
        "import pickle; exec('import pickle; pickle.dumps(1)'); pickle.loads(b)",
        # ...nor does it know the outer names: a load in an exec'd string keeps the outer import
        "import pickle; exec('pickle.loads(b)')",
        "import pickle; eval('pickle').loads(b)",
        "import torch; torch.serialization.load('m.pt', weights_only=False)",
        "import yaml\nclass SafeLoader(yaml.UnsafeLoader): pass\nyaml.load(f, Loader=SafeLoader)",
        "import yaml; yaml.Loader(f).get_single_data()",
        "import pandas as pd; getattr(pd, 'read_pickle')('x.pkl')",
        "from transformers import AutoModel; AutoModel.from_pretrained('a/b', trust_remote_code=True)",
        "import datasets; datasets.load_dataset('a/b', trust_remote_code=flag)",
        "import keras; keras.models.load_model('m.keras', safe_mode=False)",
        "import torch; torch.hub.load('acme/models', 'net')",
    ],
)
def test_loads_that_run_what_the_data_holds_are_opaque(code: str) -> None:
    fx = analyse(code)
    assert fx.opaque, code


@pytest.mark.parametrize(
    "code",
    [
        "import requests\nr = requests.get('https://pypi.org/simple/', timeout=10)\n"
        "r.raise_for_status()\nprint(r.json())",
        "import requests\ntry:\n    requests.post('https://huggingface.co/api/x', json={'a': 1})\n"
        "except requests.exceptions.RequestException as e:\n    print(e)",
        "import urllib.request\nwith urllib.request.urlopen('https://pypi.org/simple/') as f:\n"
        "    print(f.read()[:10])",
        "from urllib.request import urlretrieve\nurlretrieve('https://pypi.org/x.tar.gz', 'x.tar.gz')",
        "import httpx\nURL = 'https://pypi.org/'\nprint(httpx.get(URL).status_code)",
        "import requests\nprint(requests.__version__)\nrequests.request('GET', 'https://pypi.org/')",
    ],
)
def test_fetches_of_literal_urls_are_reviewable(code: str) -> None:
    fx = analyse(code)
    assert fx.fetches_only and fx.reviewable, (fx.net, fx.opaque, fx.doubts)
    assert fx.urls


@pytest.mark.parametrize(
    "code",
    [
        "import requests\nrequests.get('https://pypi.org/' + input())",
        "import requests\ns = requests.Session()\ns.get('https://pypi.org/')",
        "import requests\nrequests.get('https://pypi.org/', proxies={'https': 'http://203.0.113.7:3128'})",
        "import requests\nrequests.get('https://pypi.org/', hooks={'response': print})",
        "import requests\nrequests.get('https://pypi.org/', **opts)",
        "import requests\nf = requests.get\nf('https://pypi.org/')",
        "import requests\nrequests.get('file:///etc/passwd')",
        "import os, requests\nos.environ['HTTPS_PROXY'] = 'http://203.0.113.7:3128'\nrequests.get('https://pypi.org/')",
        "import os, requests\nos.putenv('HTTPS_PROXY', 'x')\nrequests.get('https://pypi.org/')",
        "import requests, socket\nrequests.get('https://pypi.org/')\n"
        "socket.create_connection(('203.0.113.7', 4444))",
        "import urllib.request as u\nu.install_opener(u.build_opener())\nu.urlopen('https://pypi.org/')",
        "from urllib.request import urlretrieve\nurlretrieve('https://pypi.org/x', name)",
        "import requests\nexec('import requests; requests.Session()')\nrequests.get('https://pypi.org/')",
        "import requests.adapters\nrequests.adapters.DEFAULT_RETRIES = 5\nrequests.get('https://pypi.org/')",
    ],
)
def test_other_network_uses_are_not_literal_fetches(code: str) -> None:
    assert not analyse(code).fetches_only, code


@pytest.mark.parametrize(
    "code",
    [
        "import subprocess; exec('subprocess.run([\"id\"])')",
        "import subprocess; eval('subprocess').run(['id'])",
        "import socket; exec('socket.create_connection((h, 1))')",
    ],
)
def test_an_import_used_only_in_an_execd_string_is_not_idle(code: str) -> None:
    fx = analyse(code)
    assert fx.spawns or fx.net, code
