"""PostgreSQL from Debian's packages, in the stack's own data dir and port.

Contract:
- The cluster is the project's own: ``initdb`` into ``<home>/postgres/data``,
  started and stopped with ``pg_ctl`` on the configured port, loopback only.
  No system cluster (``pg_lsclusters``) is ever touched.
- PostgreSQL refuses to run as root. When runwire runs as root the server
  runs as the ``postgres`` user, with only the ambient capability to search
  directories (CAP_DAC_READ_SEARCH) so that its data dir may live under a
  private home such as ``/root``. As any other user it runs as that user.
- The bootstrap superuser is ``runwire`` with trust authentication on
  127.0.0.1: a development database reachable only from this machine.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import time
from pathlib import Path

import psycopg

from runwire.errors import StackError
from runwire.infra.stack.config import StackConfig
from runwire.infra.stack.process import (
    ProcessRecord,
    ensure_writable_dir,
    first_error,
    pid_alive,
    read_record,
    run,
    write_record,
)

MARKER = "postgres"
SERVER_USER = "postgres"  # the account the server runs as when runwire is root


class PostgresPart:
    name = "postgres"

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.dir = config.postgres_dir
        self.data_dir = self.dir / "data"
        self.log_file = self.dir / "postgres.log"
        self.record_file = self.dir / "postgres.json"

    @property
    def address(self) -> str:
        c = self.config
        return f"postgresql://{c.postgres_user}@{c.host}:{c.postgres_port}/{c.postgres_db}"

    @property
    def ports(self) -> dict[str, int]:
        return {"RUNWIRE_STACK_POSTGRES_PORT": self.config.postgres_port}

    def log_files(self) -> list[Path]:
        return [self.log_file]

    def running(self) -> ProcessRecord | None:
        pid = _postmaster_pid(self.data_dir)
        if pid is None or not pid_alive(pid, MARKER):
            return None
        record = read_record(self.record_file)
        if record is None:  # running, but not (yet) known as started: configured address
            return ProcessRecord(pid=pid, port=self.config.postgres_port, address=self.address)
        return ProcessRecord(pid=pid, port=record.port, address=record.address)

    # -- before anything starts ----------------------------------------------

    def _bin(self, name: str) -> str:
        bin_dir = self.config.find_postgres_bin_dir()
        path = bin_dir / name if bin_dir else None
        if path is None or not path.is_file():
            where = bin_dir or "/usr/lib/postgresql/*/bin"
            raise StackError(
                f"the PostgreSQL server is not installed ({name} not found in {where})",
                "apt-get install postgresql (or set RUNWIRE_STACK_POSTGRES_BIN_DIR)",
            )
        return str(path)

    def _as_server_user(self) -> list[str]:
        """The command prefix that runs a PostgreSQL program as the right user."""
        if os.geteuid() != 0:
            return []
        return [
            "setpriv",
            f"--reuid={SERVER_USER}",
            f"--regid={SERVER_USER}",
            "--init-groups",
            "--inh-caps=+dac_read_search",
            "--ambient-caps=+dac_read_search",
            "--",
        ]

    async def preflight(self) -> None:
        for program in ("initdb", "pg_ctl", "postgres"):
            self._bin(program)
        if os.geteuid() == 0:
            try:
                pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise StackError(
                    f"PostgreSQL refuses to run as root and there is no {SERVER_USER!r} user",
                    "apt-get install postgresql (it creates the user), or run runwire as another user",
                ) from None
            if shutil.which("setpriv") is None:
                raise StackError(
                    "setpriv not found (needed to run PostgreSQL as the postgres user)",
                    "apt-get install util-linux",
                )
        ensure_writable_dir(self.dir, "the PostgreSQL data dir")

    # -- running -------------------------------------------------------------

    def _own(self, *paths: Path) -> None:
        if os.geteuid() != 0:
            return
        entry = pwd.getpwnam(SERVER_USER)
        for path in paths:
            os.chown(path, entry.pw_uid, entry.pw_gid)

    async def start(self) -> ProcessRecord:
        c = self.config
        fix = "see `runwire stack logs postgres`"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._own(self.dir)
        if not (self.data_dir / "PG_VERSION").is_file():
            await run(
                [
                    *self._as_server_user(),
                    self._bin("initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    c.postgres_user,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",  # first start only; the running server fsyncs as usual
                ],
                limit=120,
                what="initdb",
                fix=f"check {self.data_dir} (remove it to start from an empty database)",
                cwd=self.dir,
            )
            with (self.data_dir / "postgresql.conf").open("a") as f:
                f.write("\ninclude_if_exists = 'runwire.conf'\n")
        # Rewritten on every start so that a changed port or host takes effect.
        conf = self.data_dir / "runwire.conf"
        conf.write_text(
            f"port = {c.postgres_port}\n"
            f"listen_addresses = '{c.host}'\n"
            "unix_socket_directories = ''\n"
            "max_connections = 200\n"
            "shared_buffers = 128MB\n"
        )
        self._own(conf)
        self.log_file.touch()
        self._own(self.log_file)
        log_start = self.log_file.stat().st_size
        try:
            await run(
                [
                    *self._as_server_user(),
                    self._bin("pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_file),
                    "-w",
                    "-t",
                    str(int(c.ready_timeout)),
                    "start",
                ],
                limit=c.ready_timeout + 10,
                what="starting PostgreSQL",
                fix=fix,
                cwd=self.dir,
            )
        except StackError as e:
            # pg_ctl only says "examine the log output": say what the log says.
            with self.log_file.open("rb") as f:
                f.seek(log_start)
                said = first_error(f.read().decode(errors="replace"))
            raise StackError(f"starting PostgreSQL failed: {said or e.problem}", fix) from e
        pid = _postmaster_pid(self.data_dir)
        if pid is None:
            raise StackError("PostgreSQL started but wrote no postmaster.pid", fix)
        record = ProcessRecord(pid=pid, port=c.postgres_port, address=self.address)
        write_record(self.record_file, record)
        return record

    async def wait_ready(self, record: ProcessRecord, seconds: float) -> None:
        """Return once the database answers a query, creating it on first start."""
        c = self.config
        deadline = time.monotonic() + seconds
        admin_dsn = record.address.rsplit("/", 1)[0] + "/postgres"
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    admin_dsn, autocommit=True, connect_timeout=5
                ) as conn:
                    cur = await conn.execute(
                        "SELECT 1 FROM pg_database WHERE datname = %s", (c.postgres_db,)
                    )
                    if await cur.fetchone() is None:
                        await conn.execute(f'CREATE DATABASE "{c.postgres_db}"')
                async with await psycopg.AsyncConnection.connect(
                    record.address, connect_timeout=5
                ) as conn:
                    await conn.execute("SELECT 1")
                return
            except psycopg.Error as e:
                if not pid_alive(record.pid, MARKER) or time.monotonic() > deadline:
                    raise StackError(
                        f"PostgreSQL at {record.address} does not answer ({e})",
                        "see `runwire stack logs postgres`",
                    ) from e
                await asyncio.sleep(0.2)

    async def stop(self) -> bool:
        if self.running() is None:
            return False
        await run(
            [
                *self._as_server_user(),
                self._bin("pg_ctl"),
                "-D",
                str(self.data_dir),
                "-m",
                "fast",
                "-w",
                "-t",
                "60",
                "stop",
            ],
            limit=70,
            what="stopping PostgreSQL",
            fix="see `runwire stack logs postgres`",
            cwd=self.dir,
        )
        self.record_file.unlink(missing_ok=True)
        return True


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        first = (data_dir / "postmaster.pid").read_text().splitlines()[0]
        return int(first.strip())
    except (OSError, IndexError, ValueError):
        return None
