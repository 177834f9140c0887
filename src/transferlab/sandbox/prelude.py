"""What runs inside a sandbox around the program: its limits, then one of three modes.

- `run`: the program runs as `__main__`; its exit status is the result.
- `serve NAME IN OUT`: the program runs as `__main__`, then answers calls of its function
  NAME that arrive on fd IN, one per line, each answer on fd OUT. This is the candidate's
  side of a checked run (`transferlab.sandbox.judge`).
- `judge NAME OUT IN`: the program is trusted test code that defines `check(candidate)`;
  `candidate` (and NAME) stand for the function in the other sandbox, reached over fds OUT
  and IN. The verdict is this process's exit status and its last line of output.

Values cross between the two as plain data only (`encode`, `decode`): None, bool, int,
float, complex, str, bytes and lists, tuples, dicts, sets and frozensets of them, each of
exactly that type. A subclass, or any other object, is refused, so an answer cannot bring
its own `__eq__`; what the judge decodes is always a fresh builtin value.

The harness passes this file's source to `python -c` inside the sandbox, where transferlab
is not installed: it uses the standard library only and runs `_start()` as `__main__`.
"""

import os
import select
import sys
import time

MAX_MESSAGE = 4 * 2**20  # bytes in one encoded value: more is refused
MAX_DEPTH = 100  # nesting of containers in one value
VERDICT = "transferlab-verdict "  # the judge's last line of output starts with this

# The encoding is typed and prefix-coded, written and read here in plain Python: the json
# module would cost each sandbox more to import than the rest of its start, and marshal is
# not meant for data from an adversary. N, T, F: None, True, False; i, f: an int or float
# up to ';'; c: two floats; s, b: a byte count, ':' and the UTF-8 or raw bytes; l, t, S, z,
# d: a count, ':' and that many items (pairs for d) of a list, tuple, set, frozenset, dict.
_CONTAINERS = {list: b"l", tuple: b"t", set: b"S", frozenset: b"z"}
_MAKERS = {ord("l"): list, ord("t"): tuple, ord("S"): set, ord("z"): frozenset}


class WireError(ValueError):
    """A value that is not plain data, or a message that is not a well-formed one."""


def _pack(value, out, depth):
    kind = type(value)
    if value is None:
        out.append(b"N")
    elif kind is bool:
        out.append(b"T" if value else b"F")
    elif kind is int:
        out.append(b"i%d;" % value)
    elif kind is float:
        out.append(b"f%s;" % repr(value).encode())
    elif kind is complex:
        out.append(b"c%s;%s;" % (repr(value.real).encode(), repr(value.imag).encode()))
    elif kind is str or kind is bytes:
        data = value.encode("utf-8", "surrogatepass") if kind is str else value
        out.append(b"%s%d:" % (b"s" if kind is str else b"b", len(data)))
        out.append(data)
    elif kind in _CONTAINERS or kind is dict:
        if depth >= MAX_DEPTH:
            raise WireError(f"a value nested more than {MAX_DEPTH} deep")
        out.append(b"%s%d:" % (_CONTAINERS.get(kind, b"d"), len(value)))
        for item in (value.items() if kind is dict else value):
            if kind is dict:
                _pack(item[0], out, depth + 1)
                item = item[1]
            _pack(item, out, depth + 1)
    else:
        raise WireError(f"a value of type {kind.__name__} is not plain data")


def _number(data, pos):
    end = data.index(b";", pos)
    return data[pos:end], end + 1


def _count(data, pos):
    end = data.index(b":", pos)
    digits = data[pos:end]
    if not digits.isdigit() or end - pos > 10:
        raise WireError("a malformed count")
    return int(digits), end + 1


def _unpack(data, pos, depth):
    tag = data[pos]
    pos += 1
    if tag in b"NTF":
        return (None, True, False)[b"NTF".index(tag)], pos
    if tag == ord("i"):
        token, pos = _number(data, pos)
        if not token.removeprefix(b"-").isdigit():
            raise WireError("a malformed int")
        return int(token), pos
    if tag == ord("f"):
        token, pos = _number(data, pos)
        return float(token), pos
    if tag == ord("c"):
        real, pos = _number(data, pos)
        imag, pos = _number(data, pos)
        return complex(float(real), float(imag)), pos
    if tag in b"sb":
        size, pos = _count(data, pos)
        chunk = data[pos:pos + size]
        if len(chunk) != size:
            raise WireError("a truncated message")
        return (chunk.decode("utf-8", "surrogatepass") if tag == ord("s") else chunk), pos + size
    if tag in _MAKERS or tag == ord("d"):
        if depth >= MAX_DEPTH:
            raise WireError(f"a value nested more than {MAX_DEPTH} deep")
        size, pos = _count(data, pos)
        items = []
        for _ in range(size * 2 if tag == ord("d") else size):  # each item takes a byte at least
            item, pos = _unpack(data, pos, depth + 1)
            items.append(item)
        if tag == ord("d"):
            return dict(zip(items[::2], items[1::2])), pos
        return _MAKERS[tag](items), pos
    raise WireError("a malformed message")


def encode(value) -> bytes:
    """The bytes of a plain value; WireError for anything else."""
    out = []
    try:
        _pack(value, out, 0)
    except ValueError as e:  # an int too long to write, say
        raise WireError(str(e)) from None
    data = b"".join(out)
    if len(data) > MAX_MESSAGE:
        raise WireError(f"a value over {MAX_MESSAGE} bytes")
    return data


def decode(data: bytes):
    """The plain value `data` stands for: fresh builtins only, or WireError."""
    if len(data) > MAX_MESSAGE:
        raise WireError(f"a message over {MAX_MESSAGE} bytes")
    try:
        value, end = _unpack(bytes(data), 0, 0)
    except WireError:
        raise
    except (ValueError, TypeError, IndexError) as e:  # a bad number, an unhashable key, a short message
        raise WireError(f"a malformed message ({type(e).__name__})") from None
    if end != len(data):
        raise WireError("a malformed message (trailing bytes)")
    return value


class _Channel:
    """Messages (a byte count, a newline, the bytes) over a pair of pipe ends, each read and
    write bounded by a deadline."""

    def __init__(self, read_fd, write_fd, deadline):
        self.read_fd, self.write_fd, self.deadline = read_fd, write_fd, deadline
        self.buffer = bytearray()

    def _wait(self, fd, writing):
        left = None if self.deadline == float("inf") else max(self.deadline - time.monotonic(), 0)
        ready = select.select([], [fd], [], left) if writing else select.select([fd], [], [], left)
        if not any(ready):
            raise TimeoutError("the candidate did not answer in time")

    def send(self, payload):
        view = memoryview(b"%d\n" % len(payload) + payload)
        while view:
            self._wait(self.write_fd, True)
            view = view[os.write(self.write_fd, view[: 1 << 16]):]

    def _fill(self, size):
        """Read until the buffer holds `size` bytes; False at the end of input."""
        while len(self.buffer) < size:
            self._wait(self.read_fd, False)
            chunk = os.read(self.read_fd, 1 << 16)
            if not chunk:
                return False
            self.buffer += chunk
        return True

    def receive(self):
        """The next message, None at the end of input."""
        while b"\n" not in self.buffer[:12]:
            if len(self.buffer) >= 12:
                raise WireError("a malformed message header")
            if not self._fill(len(self.buffer) + 1):
                return None
        header, _, rest = bytes(self.buffer).partition(b"\n")
        if not header.isdigit() or int(header) > MAX_MESSAGE:
            raise WireError("a malformed or oversized message header")
        self.buffer = bytearray(rest)
        if not self._fill(int(header)):
            return None
        payload, self.buffer = bytes(self.buffer[: int(header)]), self.buffer[int(header):]
        return payload


def _serve(name, read_fd, write_fd, namespace):
    """Answer calls of the program's function until the judge closes its end."""
    channel = _Channel(int(read_fd), int(write_fd), float("inf"))
    while (message := channel.receive()) is not None:
        seq, args, kwargs = decode(message)
        try:
            function = namespace.get(name)
            if function is None:
                raise NameError(f"the program defines no {name}")
            answer = function(*args, **kwargs)
            try:
                data = encode((seq, "ok", answer))
            except WireError as e:
                data = encode((seq, "refused", str(e)))
        except BaseException as e:  # noqa: B036 - SystemExit from the function is its answer too
            data = encode((seq, "raised", f"{type(e).__name__}: {e}"[:500]))
        channel.send(data)


class CandidateError(Exception):
    """The candidate raised, gave an answer that is not plain data, or did not answer."""


class Candidate:
    """The judge's stand-in for the function under test: each call is a round trip."""

    def __init__(self, name, write_fd, read_fd, deadline):
        self.__name__ = name
        self.calls = 0
        self._channel = _Channel(int(read_fd), int(write_fd), deadline)

    def __call__(self, *args, **kwargs):
        self.calls += 1
        try:
            self._channel.send(encode((self.calls, list(args), kwargs)))
        except (BrokenPipeError, ConnectionResetError):
            raise CandidateError("the candidate ended before it was called") from None
        message = self._channel.receive()
        if message is None:
            raise CandidateError("the candidate ended without answering")
        reply = decode(message)
        if type(reply) is not tuple or len(reply) != 3 or reply[0] != self.calls:
            raise CandidateError("the candidate answered out of turn")
        if reply[1] == "ok":
            return reply[2]
        raise CandidateError(f"the candidate {reply[1]}: {str(reply[2])[:500]}")


def _test_line(error, namespace):
    """The line of the test program where `error` was raised last."""
    line, tb = None, error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_globals is namespace:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _judge(name, write_fd, read_fd, namespace, deadline):
    """Run `check(candidate)`; the verdict is the exit status and the last line:
    VERDICT, then 'passed', 'failed' or 'timeout', the number of calls, and the reason."""
    candidate = Candidate(name, write_fd, read_fd, deadline)
    namespace[name] = candidate  # a test may compare against the function by its own name
    outcome, reason = "failed", ""
    try:
        namespace["check"](candidate)
        outcome = "passed"
    except TimeoutError as e:
        outcome, reason = "timeout", str(e)
    except (CandidateError, WireError) as e:
        reason = str(e)
    except BaseException as e:  # noqa: B036 - an assert of the test, or anything else that stops it
        reason = f"{type(e).__name__} at line {_test_line(e, namespace)} of the tests: {e}"
    reason = " ".join(reason.split())[:500]
    sys.stdout.write(f"\n{VERDICT}{outcome} {candidate.calls} {reason}\n")
    sys.stdout.flush()
    os._exit(0 if outcome == "passed" else 1)


def _start():
    import builtins
    import resource
    import types

    started = time.monotonic()
    path, limits, mode, *mode_args = sys.argv[1:]
    for item in limits.split(","):
        name, values = item.split("=")
        resource.setrlimit(getattr(resource, name), tuple(int(v) for v in values.split(":")))
    if not hasattr(builtins, "exit"):  # python -S leaves out site's exit() and quit()
        import _sitebuiltins

        builtins.exit = _sitebuiltins.Quitter("exit", "Ctrl-D (i.e. EOF)")
        builtins.quit = _sitebuiltins.Quitter("quit", "Ctrl-D (i.e. EOF)")
    with open(path, encoding="utf-8") as f:
        source = f.read()
    code = compile(source, os.path.basename(path), "exec")
    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__builtins__ = builtins
    sys.modules["__main__"] = main
    sys.argv = [path]
    exec(code, main.__dict__)
    if mode == "judge":
        name, write_fd, read_fd, timeout_s = mode_args
        _judge(name, write_fd, read_fd, main.__dict__, started + float(timeout_s))
    elif mode == "serve":
        sys.stdout.flush()
        _serve(*mode_args, main.__dict__)


if __name__ == "__main__":
    _start()
