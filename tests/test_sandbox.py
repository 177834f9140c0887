"""The sandbox that runs generated code: how programs end, the plain-data wire, checked runs,
the record of protections, and the refusal where there is no isolation.

Attacks (network, files, processes, memory, disk, faked verdicts) are in test_sandbox_attacks.py.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
import time

import pytest

import transferlab.sandbox.bwrap as isolation_module
from transferlab.sandbox import (
    ALLOW_UNSAFE_ENV, SandboxResult, SandboxUnavailable, isolation, run_checked, run_many, run_python,
)
from transferlab.sandbox.prelude import MAX_DEPTH, WireError, decode, encode

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the sandbox needs a POSIX system")

needs_isolation = pytest.mark.skipif(not isolation().isolated, reason=f"no isolation here: {isolation().problem}")


# ---- how programs end ----------------------------------------------------------------------

@needs_isolation
def test_a_passing_program_passes_and_its_output_comes_back() -> None:
    result = run_python("print('hello from the sandbox')")
    assert isinstance(result, SandboxResult)
    assert result.passed and result.status == "passed" and result.returncode == 0
    assert result.stdout.strip() == "hello from the sandbox"
    assert result.duration_s < 5


@needs_isolation
def test_every_result_records_the_protections_it_ran_under() -> None:
    result = run_python("pass")
    assert result.protections == isolation().protections()
    assert any(p.startswith("bubblewrap: new pid, mount, network") for p in result.protections)
    assert any("tmpfs" in p for p in result.protections)
    assert not any("UNSAFE" in p for p in result.protections)


@needs_isolation
def test_a_failing_assert_fails_with_its_traceback() -> None:
    result = run_python("def f():\n    return 1\n\nassert f() == 2, 'wrong answer'\n")
    assert not result.passed and result.status == "failed" and result.returncode == 1
    assert "AssertionError: wrong answer" in result.stderr
    assert 'File "main.py", line 4' in result.stderr  # tracebacks point into the program


@needs_isolation
def test_a_syntax_error_fails() -> None:
    result = run_python("def f(:\n")
    assert result.status == "failed" and "SyntaxError" in result.stderr


@needs_isolation
def test_an_infinite_loop_is_killed_at_the_timeout_and_quickly() -> None:
    start = time.monotonic()
    result = run_python("while True:\n    pass\n", timeout_s=1.0)
    assert result.status == "timeout" and not result.passed
    assert time.monotonic() - start < 3.0


@needs_isolation
def test_a_sleeping_program_is_killed_at_the_wall_clock_timeout() -> None:
    result = run_python("import time\ntime.sleep(60)\n", timeout_s=0.5)
    assert result.status == "timeout" and result.duration_s < 2.5


@needs_isolation
def test_cpu_seconds_are_limited_separately_from_the_wall_clock() -> None:
    result = run_python("while True:\n    pass\n", timeout_s=30, cpu_s=1)
    assert result.status == "timeout" and result.duration_s < 10


@needs_isolation
@pytest.mark.parametrize("bomb", [
    "x = bytearray(8 * 1024**3)\n",
    "chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 1024**2))\n",
])
def test_a_memory_bomb_fails_without_hurting_the_parent(bomb: str) -> None:
    result = run_python(bomb, memory_mb=256, timeout_s=20)
    assert result.status == "memory"
    assert result.duration_s < 10
    assert run_python("print(sum(range(10)))").stdout.strip() == "45"  # the sandbox still works


@needs_isolation
def test_output_is_kept_to_its_tail() -> None:
    result = run_python("for i in range(100_000):\n    print(i)\n", tail_bytes=100)
    assert result.passed and len(result.stdout) <= 100 and result.stdout.endswith("99999\n")


@needs_isolation
def test_the_environment_is_minimal_and_sees_only_the_standard_library(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSFERLAB_SECRET", "hunter2")
    program = textwrap.dedent("""
        import os, sys
        print(sorted(os.environ))
        print(sys.flags.isolated)
        try:
            import transferlab
            print("transferlab importable")
        except ImportError:
            print("standard library only")
        exit(0)
    """)
    result = run_python(program, env={"EXTRA": "1"})
    assert result.passed, result.stderr
    names, isolated, packages = result.stdout.splitlines()
    assert "TRANSFERLAB_SECRET" not in names and "EXTRA" in names
    assert isolated == "1"
    assert packages == "standard library only"  # the project's virtual environment stays outside


@needs_isolation
def test_run_many_runs_concurrently_and_keeps_the_order() -> None:
    codes = [f"import time\ntime.sleep(0.5)\nprint({i})\n" for i in range(8)]
    start = time.monotonic()
    results = run_many(codes, workers=8)
    elapsed = time.monotonic() - start
    assert [r.stdout.strip() for r in results] == [str(i) for i in range(8)]
    assert all(r.passed for r in results)
    assert elapsed < 3.5  # one after the other would take 4 s
    assert run_many([]) == []


@needs_isolation
def test_run_many_passes_options_through() -> None:
    results = run_many(["while True: pass", "print('ok')"], workers=2, timeout_s=0.5)
    assert [r.status for r in results] == ["timeout", "passed"]


# ---- the plain-data wire between candidate and judge -----------------------------------------

PLAIN = [
    None, True, False, 0, -7, 10**300, 1.5, -0.0, math.inf, 1 + 2j, "", "héllo\n\x00", "\ud800", b"\x00\xff",
    [], [1, [2, [3]]], (1, "a"), (), {1, 2}, frozenset({"x"}), {"a": [1, 2], (1, 2): {3: None}},
    [True, 1, 1.0],  # bool, int and float stay apart
]


@pytest.mark.parametrize("value", PLAIN, ids=repr)
def test_plain_values_cross_the_wire_unchanged_in_value_and_type(value: object) -> None:
    back = decode(encode(value))
    assert back == value and type(back) is type(value)
    assert repr(back) == repr(value)


def test_nan_crosses_the_wire() -> None:
    assert math.isnan(decode(encode(math.nan)))


class Liar:
    def __eq__(self, other: object) -> bool:
        return True


class LyingInt(int):
    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = int.__hash__


class LyingList(list):  # type: ignore[type-arg]
    def __eq__(self, other: object) -> bool:
        return True


@pytest.mark.parametrize("value", [Liar(), LyingInt(3), LyingList([1]), [Liar()], {"k": LyingInt(1)}, object(),
                                   iter([1]), print, bytearray(b"x")], ids=repr)
def test_anything_but_plain_builtins_is_refused(value: object) -> None:
    with pytest.raises(WireError):
        encode(value)


def test_too_deep_or_too_big_values_are_refused() -> None:
    deep: list[object] = []
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(WireError):
        encode(deep)
    with pytest.raises(WireError):
        encode("x" * (5 * 2**20))
    with pytest.raises(WireError):
        encode(10**5000)  # more digits than int() reads back


@pytest.mark.parametrize("data", [
    b"", b"X", b"i12", b"i1a;", b"i--1;", b"f;", b"fabc;", b"s5:abc", b"s-1:", b"s99999999999:", b"l2:N", b"l1:NN",
    b"S1:l0:", b"d1:l0:N", b"c1.0;", b"b3:ab", b"s2:\xff\xfe", b"l" + b"9" * 20 + b":", b"l1:" * 200 + b"N",
], ids=repr)
def test_malformed_messages_are_a_wire_error_never_anything_else(data: bytes) -> None:
    with pytest.raises(WireError):
        decode(data)


# ---- checked runs --------------------------------------------------------------------------

TESTS = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"


@needs_isolation
def test_a_checked_run_passes_a_right_function_and_fails_a_wrong_one() -> None:
    right = run_checked("def add(a, b):\n    return a + b\n", TESTS, "add")
    assert right.passed and right.status == "passed" and right.calls == 2
    assert right.protections == isolation().protections()
    wrong = run_checked("def add(a, b):\n    return a - b\n", TESTS, "add")
    assert wrong.status == "failed" and "AssertionError at line 2" in wrong.reason


@needs_isolation
@pytest.mark.parametrize(("program", "reason"), [
    ("def add(a, b):\n    raise ValueError('no')\n", "the candidate raised: ValueError: no"),
    ("def add(a, b):\n    return {1, 2}.__iter__()\n", "is not plain data"),
    ("x = 1\n", "defines no add"),
    ("import os\nos._exit(0)\n", "ended"),
])
def test_a_checked_run_says_why_it_failed(program: str, reason: str) -> None:
    result = run_checked(program, TESTS, "add")
    assert result.status == "failed" and reason in result.reason, result


@needs_isolation
def test_a_checked_run_times_out_on_a_hanging_candidate() -> None:
    start = time.monotonic()
    result = run_checked("def add(a, b):\n    while True:\n        pass\n", TESTS, "add", timeout_s=1.0)
    assert result.status == "timeout" and time.monotonic() - start < 6


# ---- no isolation: refused in one line, unless the risk is accepted --------------------------

def without_bwrap(tmp_path: os.PathLike[str]) -> dict[str, str]:
    """An environment whose PATH holds no bwrap (and no unshare or setpriv)."""
    env = {k: v for k, v in os.environ.items() if k != ALLOW_UNSAFE_ENV}
    env["PATH"] = str(tmp_path)
    return env


def test_without_isolation_the_check_command_refuses_in_one_line(tmp_path: os.PathLike[str]) -> None:
    env = without_bwrap(tmp_path)
    done = subprocess.run([sys.executable, "-m", "transferlab.sandbox"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "bubblewrap" in lines[0] and ALLOW_UNSAFE_ENV in lines[0]
    allowed = subprocess.run([sys.executable, "-m", "transferlab.sandbox"], env={**env, ALLOW_UNSAFE_ENV: "1"},
                             capture_output=True, text=True, timeout=60)
    assert allowed.returncode == 0 and allowed.stdout.startswith("UNSAFE: no isolation")


def test_without_isolation_running_code_is_refused_unless_allowed(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: os.PathLike[str]) -> None:
    monkeypatch.setattr(isolation_module, "_cached", None)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv(ALLOW_UNSAFE_ENV, raising=False)
    assert not isolation().isolated and "not installed" in isolation().problem
    with pytest.raises(SandboxUnavailable) as refused:
        run_python("print('hi')")
    assert "\n" not in str(refused.value) and ALLOW_UNSAFE_ENV in str(refused.value)
    with pytest.raises(SandboxUnavailable):
        run_checked("def add(a, b):\n    return a + b\n", TESTS, "add")
    allowed = run_python("print('hi')", allow_unsafe=True)
    assert allowed.passed and allowed.stdout == "hi\n"
    assert allowed.protections[0].startswith("UNSAFE: no isolation")
    monkeypatch.setenv(ALLOW_UNSAFE_ENV, "1")
    checked = run_checked("def add(a, b):\n    return a + b\n", TESTS, "add")
    assert checked.passed and checked.protections[0].startswith("UNSAFE")
