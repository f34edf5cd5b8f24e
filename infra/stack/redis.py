"""Redis from Debian's ``redis-server``, in the stack's own dir and port.

Contract: loopback only, append-only file on (every write is in the AOF
within a second), so ``down`` / ``up`` and a crash keep the keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from pathlib import Path

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from runwire.errors import StackError
from runwire.infra.stack.config import StackConfig
from runwire.infra.stack.process import (
    ProcessRecord,
    ensure_writable_dir,
    pid_alive,
    read_record,
    run,
    terminate,
    write_record,
)

MARKER = "redis-server"


class RedisPart:
    name = "redis"

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.dir = config.redis_dir
        self.conf_file = self.dir / "redis.conf"
        self.pid_file = self.dir / "redis.pid"
        self.log_file = self.dir / "redis.log"
        self.record_file = self.dir / "redis.json"

    @property
    def address(self) -> str:
        return f"redis://{self.config.host}:{self.config.redis_port}/0"

    @property
    def ports(self) -> dict[str, int]:
        return {"RUNWIRE_STACK_REDIS_PORT": self.config.redis_port}

    def log_files(self) -> list[Path]:
        return [self.log_file]

    def running(self) -> ProcessRecord | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if not pid_alive(pid, MARKER):
            return None
        record = read_record(self.record_file)
        if record is None:  # running, but not (yet) known as started: configured address
            return ProcessRecord(pid=pid, port=self.config.redis_port, address=self.address)
        return ProcessRecord(pid=pid, port=record.port, address=record.address)

    async def preflight(self) -> None:
        if shutil.which(self.config.redis_server) is None:
            raise StackError(
                f"Redis is not installed ({self.config.redis_server!r} not found)",
                "apt-get install redis-server (or set RUNWIRE_STACK_REDIS_SERVER)",
            )
        ensure_writable_dir(self.dir, "the Redis data dir")

    async def start(self) -> ProcessRecord:
        c = self.config
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf_file.write_text(
            f"bind {c.host}\n"
            f"port {c.redis_port}\n"
            "protected-mode yes\n"
            "daemonize yes\n"
            f"pidfile {self.pid_file}\n"
            f"logfile {self.log_file}\n"
            f"dir {self.dir}\n"
            "appendonly yes\n"
            "appendfsync everysec\n"
            "save 300 1\n"
            "databases 16\n"
        )
        self.pid_file.unlink(missing_ok=True)
        redis_server = shutil.which(c.redis_server) or c.redis_server
        await run(
            [redis_server, str(self.conf_file)],
            limit=30,
            what="starting Redis",
            fix="see `runwire stack logs redis`",
            cwd=self.dir,
        )
        deadline = time.monotonic() + 10
        # Redis creates the pid file before it writes the pid into it: wait
        # for the number, not just the file.
        while not (text := self._read_pid_text()).isdigit():
            if time.monotonic() > deadline:
                raise StackError(
                    "Redis started but wrote no pid file", "see `runwire stack logs redis`"
                )
            await asyncio.sleep(0.05)
        pid = int(text)
        record = ProcessRecord(pid=pid, port=c.redis_port, address=self.address)
        write_record(self.record_file, record)
        return record

    def _read_pid_text(self) -> str:
        try:
            return self.pid_file.read_text().strip()
        except FileNotFoundError:
            return ""

    async def wait_ready(self, record: ProcessRecord, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            client = aioredis.Redis.from_url(record.address, socket_connect_timeout=2)
            try:
                # While loading the AOF Redis answers LOADING; a PING that passes means ready.
                if await client.ping():
                    return
            except RedisError as e:
                if not pid_alive(record.pid, MARKER) or time.monotonic() > deadline:
                    raise StackError(
                        f"Redis at {record.address} does not answer ({e})",
                        "see `runwire stack logs redis`",
                    ) from e
            finally:
                await client.aclose()
            await asyncio.sleep(0.05)

    async def stop(self) -> bool:
        record = self.running()
        if record is None:
            return False
        client = aioredis.Redis.from_url(record.address, socket_connect_timeout=2)
        # SHUTDOWN makes Redis flush the AOF and exit; the connection drops as it does.
        with contextlib.suppress(RedisError):
            await client.shutdown()
        with contextlib.suppress(RedisError):
            await client.aclose()
        await terminate(record.pid, MARKER, grace=30)
        self.record_file.unlink(missing_ok=True)
        return True
