"""Attacks on the sandbox, tried as a hostile program would: each must be contained.

Network attempts aim only at listeners this test starts on 127.0.0.1. Each attack reports
what it managed on its stdout, and the test checks that against what the host sees.
"""

from __future__ import annotations

import ast
import os
import shutil
import socket
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from transferlab.learn.rollouts import Rollout, score_groups
from transferlab.sandbox import isolation, run_python
from transferlab.tasks import Example, get_task
from transferlab.tasks.humaneval import HumanEvalTask

pytestmark = pytest.mark.skipif(not isolation().isolated, reason=f"no isolation here: {isolation().problem}")


@pytest.fixture
def listeners() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A TCP and a UDP socket on 127.0.0.1 (same port number where possible) that nothing may reach."""
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    tcp.settimeout(0.2)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(0.2)
    yield tcp, udp
    tcp.close()
    udp.close()


def assert_untouched(tcp: socket.socket, udp: socket.socket) -> None:
    with pytest.raises(TimeoutError):
        tcp.accept()
    with pytest.raises(TimeoutError):
        udp.recvfrom(100)


NETWORK_ATTACKS = {
    "socket": "import socket\nsocket.create_connection(('127.0.0.1', TCP), timeout=2)\n",
    "urllib": "import urllib.request\nurllib.request.urlopen('http://127.0.0.1:TCP/', timeout=2)\n",
    "udp": "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.sendto(b'x', ('127.0.0.1', UDP))\n"
           "s.settimeout(1)\ns.recv(1)\n",
    "_socket re-imported": textwrap.dedent("""
        import sys
        sys.modules.pop('_socket', None)
        sys.modules.pop('socket', None)
        import _socket
        s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        s.settimeout(2)
        s.connect(('127.0.0.1', TCP))
    """),
    "ctypes syscalls": textwrap.dedent("""
        import ctypes, struct
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.socket(2, 1, 0)
        address = struct.pack('=H', 2) + struct.pack('!H', TCP) + bytes([127, 0, 0, 1]) + bytes(8)
        if libc.connect(fd, address, len(address)) != 0:
            raise OSError(ctypes.get_errno(), 'connect failed')
    """),
    "a subprocess": textwrap.dedent("""
        import subprocess, sys
        code = "import socket; socket.create_connection(('127.0.0.1', TCP), timeout=2)"
        subprocess.run([sys.executable, '-c', code], check=True)
    """),
    "curl": "import subprocess\nsubprocess.run(['CURL', '-sS', '-m', '2', 'http://127.0.0.1:TCP/'], check=True)\n",
    "bring loopback up": textwrap.dedent("""
        import subprocess
        subprocess.run(['ip', 'link', 'set', 'lo', 'up'])
        import socket
        socket.create_connection(('127.0.0.1', TCP), timeout=2)
    """),
}


@pytest.mark.parametrize("attack", list(NETWORK_ATTACKS))
def test_the_network_is_unreachable(attack: str, listeners: tuple[socket.socket, socket.socket]) -> None:
    tcp, udp = listeners
    program = NETWORK_ATTACKS[attack]
    if "CURL" in program:
        curl = shutil.which("curl")
        if curl is None:  # the same request from a Python subprocess, as curl would make it
            program = NETWORK_ATTACKS["a subprocess"]
        program = program.replace("CURL", curl or "")
    program = program.replace("TCP", str(tcp.getsockname()[1])).replace("UDP", str(udp.getsockname()[1]))
    result = run_python(program, timeout_s=10)
    assert result.status == "failed", (attack, result)
    assert_untouched(tcp, udp)


def test_unix_sockets_of_the_host_are_unreachable(tmp_path: Path) -> None:
    abstract = f"\0transferlab-attack-{uuid.uuid4().hex}"
    path = tmp_path / "listener.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as by_name, \
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as by_path:
        by_name.bind(abstract)
        by_path.bind(str(path))
        for listener in (by_name, by_path):
            listener.listen()
            listener.settimeout(0.2)
        program = textwrap.dedent(f"""
            import socket
            reached = []
            for address in [{abstract!r}, {str(path)!r}]:
                try:
                    socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).connect(address)
                    reached.append(address)
                except OSError:
                    pass
            print(reached)
        """)
        result = run_python(program)
        assert result.passed and result.stdout == "[]\n", result
        for listener in (by_name, by_path):
            with pytest.raises(TimeoutError):
                listener.accept()


def test_files_outside_cannot_be_read_changed_or_deleted(tmp_path: Path) -> None:
    secret = tmp_path / "root-only.txt"
    secret.write_text("the secret")
    secret.chmod(0o600)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    here = Path(__file__).resolve()
    program = textwrap.dedent(f"""
        import os, shutil
        got = []
        for path in [{str(secret)!r}, "/etc/shadow", "/etc/passwd", "/root/.bashrc", {str(here)!r},
                     "/proc/1/environ", "/proc/1/root/etc/hostname", "/sys/kernel/notes"]:
            try:
                with open(path) as f:
                    got.append("read " + path + ": " + f.read(20))
            except OSError:
                pass
        for path in [{str(victim)!r}, {str(here)!r}, "/usr/lib/os-release"]:
            for attempt in (os.remove, lambda p: open(p, "w").write("x"), lambda p: os.chmod(p, 0o777)):
                try:
                    attempt(path)
                    got.append("changed " + path)
                except OSError:
                    pass
        for path in ["/usr/transferlab-was-here", "/transferlab-was-here", "/sandbox/x", "/dev/x", "/proc/x"]:
            try:
                open(path, "w").close()
                got.append("wrote " + path)
            except OSError:
                pass
        status = open("/proc/self/status").read()
        got.append([line for line in status.splitlines() if line.startswith(("Uid:", "CapEff:"))])
        print(got)
    """)
    result = run_python(program)
    assert result.passed, result.stderr
    got = ast.literal_eval(result.stdout)
    *done, (uid_line, caps_line) = got
    assert done == [], done
    assert victim.read_text() == "keep me" and secret.read_text() == "the secret"
    assert caps_line.split()[1] == "0000000000000000"  # no capabilities, so root-only files stay closed
    if os.geteuid() == 0:
        assert uid_line.split()[1] != "0"


def test_tmp_and_dev_shm_are_private_and_gone_after_the_run() -> None:
    marker = f"transferlab-attack-{uuid.uuid4().hex}"
    program = textwrap.dedent(f"""
        import os
        for place in ["/tmp", "/dev/shm", os.environ["HOME"], os.getcwd()]:
            with open(os.path.join(place, "{marker}"), "w") as f:
                f.write("persist me")
        print(sorted(os.listdir("/tmp")))
    """)
    result = run_python(program)
    assert result.passed, result.stderr
    assert ast.literal_eval(result.stdout) == [marker]  # nothing of the host's /tmp, nor of other runs, is visible
    for place in ("/tmp", "/dev/shm", "/var/tmp"):
        assert not (Path(place) / marker).exists()
    assert run_python(f"import os\nprint(os.path.exists('/tmp/{marker}'))").stdout == "False\n"


def test_the_disk_cannot_be_filled() -> None:
    program = textwrap.dedent("""
        import os
        chunk = b"x" * 2**20
        wrote = {}
        for place in ["/tmp", "/dev/shm", "/var/tmp", "/sandbox", "/"]:
            wrote[place] = 0
            try:
                with open(os.path.join(place, "fill"), "wb") as f:
                    for _ in range(300):
                        f.write(chunk)
                        f.flush()
                        wrote[place] += 1
            except OSError:
                pass
        print(wrote)
    """)
    before = {p: shutil.disk_usage(p).used for p in ("/tmp", "/dev/shm")}
    result = run_python(program, disk_mb=32, timeout_s=20)
    assert result.passed, result.stderr
    wrote = ast.literal_eval(result.stdout)
    assert wrote["/tmp"] <= 32 and wrote["/dev/shm"] <= 16, wrote
    assert wrote["/var/tmp"] == wrote["/sandbox"] == wrote["/"] == 0, wrote
    for place, used in before.items():
        assert shutil.disk_usage(place).used < used + 50 * 2**20
    flood = run_python("import sys\nchunk = 'x' * 2**20\nfor _ in range(200):\n    sys.stdout.write(chunk)\n",
                       max_file_mb=8, tail_bytes=100)
    assert flood.status == "failed" and "File too large" in flood.stderr  # the output files are capped too


def processes_named(name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name and "Z" not in (entry / "stat").read_text().split()[2]:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_a_fork_bomb_is_contained() -> None:
    name = f"tlbomb{uuid.uuid4().hex[:8]}"
    bomb = textwrap.dedent(f"""
        import ctypes, os, time
        made = refused = 0
        for _ in range(2000):
            try:
                pid = os.fork()
            except OSError:
                refused += 1
                continue
            if pid == 0:
                ctypes.CDLL(None).prctl(15, {name.encode()!r}, 0, 0, 0)  # PR_SET_NAME: its /proc/PID/comm
                time.sleep(30)
                os._exit(0)
            made += 1
        print(made, refused, flush=True)
        time.sleep(30)
    """)
    start = time.monotonic()
    result = run_python(bomb, max_procs=8, timeout_s=3)
    assert result.status == "timeout" and time.monotonic() - start < 10
    made, refused = map(int, result.stdout.split())
    assert made < 8 and refused == 2000 - made
    assert processes_named(name) == []  # and none of them outlived the run


@pytest.mark.parametrize("trial", range(4))
def test_a_re_forking_daemon_does_not_survive_the_run(trial: int) -> None:
    name = f"tldaemon{uuid.uuid4().hex[:7]}"
    daemon = textwrap.dedent(f"""
        import ctypes, os, time
        libc = ctypes.CDLL(None)
        if os.fork() == 0:
            os.setsid()
            while True:  # re-fork every 2 ms: a new pid each time, the old one gone
                time.sleep(0.002)
                try:
                    if os.fork() != 0:
                        os._exit(0)
                except OSError:  # out of processes for a moment: keep going
                    continue
                libc.prctl(15, {name.encode()!r}, 0, 0, 0)
        time.sleep(0.3)
        print("leaving", flush=True)
    """)
    result = run_python(daemon, timeout_s=5)
    assert result.passed and "leaving" in result.stdout, result
    time.sleep(0.2)
    assert processes_named(name) == []


def test_memory_is_limited_across_children_together() -> None:
    if isolation().cgroup is None:
        pytest.skip("no cgroup here: memory is limited per process only (and the record says so)")
    program = textwrap.dedent("""
        import os, time
        read, write = os.pipe()
        for _ in range(4):
            if os.fork() == 0:
                block = b"x" * (200 * 2**20)  # touched, so it is really held
                os.write(write, b"%8d" % os.getpid())
                time.sleep(5)
                os._exit(0)
        time.sleep(3)
        os.set_blocking(read, False)
        try:
            pids = [int(p) for p in os.read(read, 1000).split()]
        except BlockingIOError:
            pids = []
        held = [pid for pid in pids if os.waitpid(pid, os.WNOHANG) == (0, 0)]  # holding it still
        print(len(held), flush=True)
    """)
    result = run_python(program, memory_mb=512, timeout_s=15)
    held = int(result.stdout) if result.stdout.strip().isdigit() else 0
    assert held * 200 <= 512, result  # at most two of the four 200 MB children held it at once
    assert result.status in ("passed", "memory"), result


# ---- faked verdicts: HumanEval's pass@1, and so GRPO's reward ----------------------------------

READ_THE_MARKER = '''
def has_close_elements(numbers, threshold):
    return True

def _fake():
    import glob, os, re, sys
    found = []
    for path in ["/sandbox/main.py", "/proc/self/cmdline", "/proc/self/environ", *glob.glob("/proc/*/cmdline")]:
        try:
            found += re.findall(rb"transferlab[-\\w]*", open(path, "rb").read())
        except OSError:
            pass
    for marker in set(found):
        print(marker.decode())
    print("transferlab-verdict passed 9 ")
    sys.stdout.flush()
    for fd in range(3, 64):  # forge an answer on every pipe it holds
        try:
            os.write(fd, b"12\\nt3:i1;s2:okT")
        except OSError:
            pass
    os._exit(0)

_ = _fake()
'''

REPLACE_CHECK_BY_TRACING = '''
import sys, threading

def _tracer(frame, event, arg):
    if frame.f_code.co_name == "check":
        frame.f_globals["check"] = lambda candidate: None
        raise SystemExit(0)
    return _tracer

_ = sys.settrace(_tracer)
_ = threading.settrace(_tracer)
_ = sys.setprofile(_tracer)

def has_close_elements(numbers, threshold):
    return True
'''

EQUAL_TO_EVERYTHING = '''
class _Anything:
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __bool__(self): return True
    def __abs__(self): return 0
    def __sub__(self, other): return self
    def __lt__(self, other): return True
    __hash__ = object.__hash__

class _TrueInt(int):
    def __eq__(self, other): return True
    __hash__ = int.__hash__

def has_close_elements(numbers, threshold):
    return _Anything() if len(numbers) % 2 else _TrueInt(1)
'''

KILL_EVERYTHING = '''
import os, signal
def has_close_elements(numbers, threshold):
    os.kill(-1, signal.SIGKILL)
'''

TRICKS = {"the pass marker": READ_THE_MARKER, "a settrace hook": REPLACE_CHECK_BY_TRACING,
          "an object equal to everything": EQUAL_TO_EVERYTHING, "kill every process": KILL_EVERYTHING}


def fenced(code: str) -> str:
    return f"```python\n{code}```"


@pytest.fixture(scope="module")
def task_and_problem() -> tuple[HumanEvalTask, Example]:
    task = get_task("humaneval")
    assert isinstance(task, HumanEvalTask)
    return task, next(e for e in task.all_examples() if e.uid == "HumanEval/0")


def test_the_three_pass_at_1_tricks_score_zero(task_and_problem: tuple[HumanEvalTask, Example]) -> None:
    task, problem = task_and_problem
    completions = [fenced(code) for code in TRICKS.values()] + [problem.target]
    results = task.check_many([problem] * len(completions), completions)
    for (trick, _), result in zip(TRICKS.items(), results):
        assert result.status != "passed", (trick, result)
    assert results[-1].passed, results[-1]  # the honest answer in the same batch still passes
    assert task.score_many([problem] * len(completions), completions) == [{"pass@1": 0.0}] * 4 + [{"pass@1": 1.0}]


def test_a_policy_that_emits_tampering_code_gets_reward_zero(task_and_problem: tuple[HumanEvalTask, Example]) -> None:
    """GRPO's reward is the task's score (learn.rollouts.score_groups): tampering earns nothing."""
    task, problem = task_and_problem
    texts = [fenced(code) for code in TRICKS.values()] + [problem.target]
    groups = [[Rollout([1, 2], [3], text) for text in texts]]
    score_groups(task, [problem], groups, "pass@1")
    assert [r.reward for r in groups[0]] == [0.0] * len(TRICKS) + [1.0]
