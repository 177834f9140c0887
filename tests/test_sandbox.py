"""The sandbox that runs generated code: each test is one way a program can misbehave."""

from __future__ import annotations

import os
import socket
import textwrap
import time
from pathlib import Path

import pytest

from transferlab.sandbox import SandboxResult, run_many, run_python, sandbox_features

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the sandbox needs a POSIX system")


def gone(pid: int) -> bool:
    """True once `pid` no longer runs (a zombie waiting to be reaped counts as gone)."""
    try:
        state = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("State:"))
    except (FileNotFoundError, ProcessLookupError):
        return True
    return "Z" in state.split()[1]


def test_a_passing_program_passes_and_its_output_comes_back() -> None:
    result = run_python("print('hello from the sandbox')")
    assert isinstance(result, SandboxResult)
    assert result.passed and result.status == "passed" and result.returncode == 0
    assert result.stdout.strip() == "hello from the sandbox"
    assert result.duration_s < 5


def test_a_failing_assert_fails_with_its_traceback() -> None:
    result = run_python("def f():\n    return 1\n\nassert f() == 2, 'wrong answer'\n")
    assert not result.passed and result.status == "failed" and result.returncode == 1
    assert "AssertionError: wrong answer" in result.stderr
    assert 'File "main.py", line 4' in result.stderr  # tracebacks point into the program


def test_a_syntax_error_fails() -> None:
    result = run_python("def f(:\n")
    assert result.status == "failed" and "SyntaxError" in result.stderr


def test_an_infinite_loop_is_killed_at_the_timeout_and_quickly() -> None:
    start = time.monotonic()
    result = run_python("while True:\n    pass\n", timeout_s=1.0)
    assert result.status == "timeout" and not result.passed
    assert time.monotonic() - start < 3.0


def test_a_sleeping_program_is_killed_at_the_wall_clock_timeout() -> None:
    result = run_python("import time\ntime.sleep(60)\n", timeout_s=0.5)
    assert result.status == "timeout" and result.duration_s < 2.5


def test_cpu_seconds_are_limited_separately_from_the_wall_clock() -> None:
    result = run_python("while True:\n    pass\n", timeout_s=30, cpu_s=1)
    assert result.status == "timeout" and result.duration_s < 10


@pytest.mark.parametrize("bomb", [
    "x = bytearray(8 * 1024**3)\n",
    "chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 1024**2))\n",
])
def test_a_memory_bomb_fails_without_hurting_the_parent(bomb: str) -> None:
    result = run_python(bomb, memory_mb=256, timeout_s=20)
    assert result.status == "memory" and "MemoryError" in result.stderr
    assert result.duration_s < 10
    assert run_python("print(sum(range(10)))").stdout.strip() == "45"  # the sandbox still works


def test_output_is_kept_to_its_tail() -> None:
    result = run_python("for i in range(100_000):\n    print(i)\n", tail_bytes=100)
    assert result.passed and len(result.stdout) <= 100 and result.stdout.endswith("99999\n")


def test_a_socket_connect_to_localhost_fails() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0.2)
        port = server.getsockname()[1]
        for attempt in (
            f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n",
            f"import socket\ns = socket.socket()\ns.connect(('127.0.0.1', {port}))\n",
            f"import urllib.request\nurllib.request.urlopen('http://127.0.0.1:{port}/', timeout=2)\n",
        ):
            result = run_python(attempt)
            assert result.status == "failed", attempt
            assert "disabled in the sandbox" in result.stderr, result.stderr
        with pytest.raises(TimeoutError):
            server.accept()


def test_the_network_namespace_holds_even_when_the_socket_guard_is_bypassed() -> None:
    if not sandbox_features().netns:
        pytest.skip("`unshare --net` is not available here")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0.2)
        port = server.getsockname()[1]
        # Re-importing the C module gives back the real, unguarded socket type.
        bypass = textwrap.dedent(f"""
            import sys
            sys.modules.pop('_socket')
            sys.modules.pop('socket', None)
            import _socket
            s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
            s.settimeout(2)
            s.connect(('127.0.0.1', {port}))
        """)
        result = run_python(bypass)
        assert result.status == "failed"
        assert "Network is unreachable" in result.stderr, result.stderr
        with pytest.raises(TimeoutError):
            server.accept()


def test_a_written_file_lands_in_the_temporary_directory_which_is_removed() -> None:
    program = textwrap.dedent("""
        import os
        with open("answer.txt", "w") as f:
            f.write("42")
        print(os.path.abspath("answer.txt"))
        print(os.environ["HOME"])
    """)
    result = run_python(program)
    assert result.passed, result.stderr
    written, home = result.stdout.split()
    assert Path(written).parent == Path(home)  # the working directory is the sandbox's home
    assert Path(written).name == "answer.txt" and not Path(written).exists()
    assert not Path(written).parent.exists()
    assert not (Path.cwd() / "answer.txt").exists()


def test_the_environment_is_minimal_and_isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSFERLAB_SECRET", "hunter2")
    program = "import os, sys\nprint(sorted(os.environ))\nprint(sys.flags.isolated)\n"
    result = run_python(program, env={"EXTRA": "1"})
    assert result.passed, result.stderr
    names, isolated = result.stdout.splitlines()
    assert "TRANSFERLAB_SECRET" not in names and "EXTRA" in names
    assert isolated == "1"


@pytest.mark.parametrize("call", [
    "os.kill(os.getppid(), 9)",
    "os.fork()",
    "os.system('echo hi')",
    "os.remove('/etc/hostname')",
    "os.makedirs('d/e'); open('d/e/f', 'w').close(); shutil.rmtree('d')",
    "subprocess.run(['echo', 'hi'])",
])
def test_destructive_calls_are_refused(call: str) -> None:
    result = run_python(f"import os, shutil, subprocess\n{call}\n")
    assert result.status == "failed"
    assert "disabled in the sandbox" in result.stderr, result.stderr


def test_a_fork_bomb_is_contained() -> None:
    if not sandbox_features().nproc_enforced:
        pytest.skip("RLIMIT_NPROC does not apply: running as root and unable to switch uid")
    # ctypes bypasses the guard on os.fork, so only the process limit stops this. The loop is
    # bounded and the children exit on their own: the test stays safe if the limit fails.
    bomb = textwrap.dedent("""
        import ctypes, time
        libc = ctypes.CDLL(None)
        made = refused = 0
        for _ in range(40):
            pid = libc.fork()
            if pid == 0:
                time.sleep(3)
                libc._exit(0)
            if pid > 0:
                made += 1
            else:
                refused += 1
        print(made, refused)
    """)
    result = run_python(bomb, max_procs=8, timeout_s=10)
    assert result.passed, result.stderr
    made, refused = map(int, result.stdout.split())
    assert made < 8 and refused == 40 - made


def test_processes_left_behind_are_killed() -> None:
    program = textwrap.dedent("""
        import ctypes, time
        libc = ctypes.CDLL(None)
        escape = ESCAPE
        pid = libc.fork()
        if pid == 0:
            if escape:
                libc.setsid()  # leave the process group
            time.sleep(60)
            libc._exit(0)
        print(pid, flush=True)
        time.sleep(60)
    """)
    cases = [False, True] if sandbox_features().drop_uid else [False]
    for escape in cases:
        result = run_python(program.replace("ESCAPE", str(escape)), timeout_s=1.0)
        assert result.status == "timeout"
        child = int(result.stdout)
        deadline = time.monotonic() + 5
        while not gone(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gone(child), f"a child left behind (escaped the group: {escape}) still runs"


def test_run_many_runs_concurrently_and_keeps_the_order() -> None:
    codes = [f"import time\ntime.sleep(0.5)\nprint({i})\n" for i in range(8)]
    start = time.monotonic()
    results = run_many(codes, workers=8)
    elapsed = time.monotonic() - start
    assert [r.stdout.strip() for r in results] == [str(i) for i in range(8)]
    assert all(r.passed for r in results)
    assert elapsed < 3.0  # one after the other would take 4 s
    assert run_many([]) == []


def test_run_many_passes_options_through() -> None:
    results = run_many(["while True: pass", "print('ok')"], workers=2, timeout_s=0.5)
    assert [r.status for r in results] == ["timeout", "passed"]
