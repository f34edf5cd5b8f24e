"""Process and port helpers shared by the stack's parts.

The stack's servers are never children of the process that starts them: they
are started detached (their own session, reparented to init), so a CLI that
exits or a test process that ends leaves them running until ``down``, and no
caller ever has to reap them.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import re
import signal
import socket
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from runwire.errors import StackError


@dataclass(frozen=True)
class ProcessRecord:
    """What a part wrote down when it started a server: enough to find it again."""

    pid: int
    port: int
    address: str


def read_record(path: Path) -> ProcessRecord | None:
    try:
        return ProcessRecord(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def write_record(path: Path, record: ProcessRecord) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(record)))
    tmp.replace(path)


def pid_alive(pid: int, marker: str) -> bool:
    """True when ``pid`` is a live (not zombie) process whose command line has ``marker``.

    The marker guards against a recycled pid that now belongs to something else.
    """
    if pid <= 0:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X") and marker in cmdline


def port_in_use(host: str, port: int) -> bool:
    """True when something already listens on ``host:port`` (a server could not bind it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # Servers set SO_REUSEADDR too, so connections in TIME_WAIT don't count as taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as e:
            if e.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


async def run(
    argv: Sequence[str],
    *,
    limit: float,
    what: str,
    fix: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> str:
    """Run a command to completion and return its output; a failure is a StackError."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=cwd,
            env=env,
        )
    except OSError as e:
        raise StackError(f"{what} failed: cannot run {argv[0]} ({e.strerror})", fix) from e
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), limit)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise StackError(f"{what} did not finish within {limit:.0f}s", fix) from None
    text = _ANSI.sub("", out.decode(errors="replace"))
    if proc.returncode != 0:
        detail = first_error(text) or f"exit code {proc.returncode}"
        raise StackError(f"{what} failed: {detail}", fix)
    return text


async def spawn_detached(argv: Sequence[str], log_file: Path, cwd: Path) -> int:
    """Start ``argv`` in its own session, output appended to ``log_file``; return its pid."""
    script = 'log=$1; shift; setsid "$@" >>"$log" 2>&1 </dev/null & echo $!'
    out = await run(
        ["sh", "-c", script, "sh", str(log_file), *argv],
        limit=30,
        what=f"starting {argv[0]}",
        fix="check that the program exists and is executable",
        cwd=cwd,
    )
    return int(out.strip().splitlines()[-1])


async def terminate(pid: int, marker: str, *, grace: float) -> None:
    """SIGTERM, wait up to ``grace`` seconds for a clean exit, then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if await _gone(pid, marker, grace):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    await _gone(pid, marker, 10)


async def _gone(pid: int, marker: str, seconds: float) -> bool:
    """Poll until the process is gone (True) or ``seconds`` pass (False)."""
    deadline = time.monotonic() + seconds
    while pid_alive(pid, marker):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ERROR = re.compile(r"\b(ERROR|FATAL|PANIC|error|fatal)\b")


def first_error(text: str, limit: int = 400) -> str:
    """The first line of ``text`` that reports an error, else its last line, shortened."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    found = next((line for line in lines if _ERROR.search(line)), lines[-1] if lines else "")
    found = re.sub(r"^\[(ERROR|FATAL)\]\s*", "", found)
    return found if len(found) <= limit else found[: limit - 3] + "..."


def tail(path: Path, n: int) -> str:
    """The last ``n`` lines of a file ('' when it does not exist)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256 * 1024))
            data = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-n:])


def ensure_writable_dir(path: Path, what: str) -> None:
    """Create ``path`` if needed and prove it can be written, or raise a StackError."""
    fix = f"choose another place with RUNWIRE_HOME=/some/dir or make {path} writable"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".runwire-write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise StackError(f"{what} {path} is not writable ({e.strerror or e})", fix) from e
