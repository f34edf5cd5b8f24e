"""``runwire stack up | down | status | logs | kill | start``: the local Kafka, Postgres and Redis.

- ``up --brokers 3`` runs Kafka as a three-node cluster (parts ``kafka-1`` ..
  ``kafka-3``); later commands on that home find the count themselves.
- ``kill NAME`` is ``kill -9`` of one part, ``start NAME`` brings it back.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from runwire.cli.common import fail_on_runwire_error
from runwire.infra.stack import LocalStack, PartStatus, StackConfig
from runwire.infra.stack.process import tail

app = typer.Typer(help="Run the local stack: Kafka, PostgreSQL and Redis.", no_args_is_help=True)
console = Console()


PART_HELP = "kafka (kafka-1 .. kafka-N on a cluster), postgres or redis"


@app.command()
def up(
    brokers: int | None = typer.Option(
        None,
        "--brokers",
        min=1,
        max=9,
        help="Kafka nodes: 1 (the default) or a replicated cluster, e.g. 3. A home keeps its count.",
    ),
) -> None:
    """Start whatever is not running (a running stack is reused) and provision topics."""
    begun = time.monotonic()
    with fail_on_runwire_error(), console.status("starting the local stack..."):
        stack = LocalStack(StackConfig(brokers=brokers) if brokers is not None else None)
        report = asyncio.run(stack.up())
    for part in report.parts:
        verb = "started" if part.name in report.started else "running"
        console.print(f"[green]{verb:>7}[/] {part.name:<9} {part.address}")
    for line in report.topics.lines():
        if not line.startswith("unchanged"):
            console.print(f"  topics: {line}")
    console.print(f"stack up in {time.monotonic() - begun:.1f}s; addresses in {stack.stack_file}")


@app.command()
def down() -> None:
    """Stop everything the stack started; the data stays for the next `up`."""
    with fail_on_runwire_error():
        stopped = asyncio.run(LocalStack().down())
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@app.command()
def status(
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Show each part: running or not, and where it listens. Exits 1 when a part is down."""
    with fail_on_runwire_error():
        stack = LocalStack()
        parts = stack.status()
    if as_json:
        typer.echo(json.dumps({p.name: p.as_dict() for p in parts}, indent=2))
    else:
        console.print(_table(parts))
        console.print(f"data and logs under {stack.config.home}")
    if not all(p.running for p in parts):
        raise typer.Exit(1)


@app.command()
def logs(
    part: str | None = typer.Argument(None, help=f"One part: {PART_HELP}; all when left out."),
    lines: int = typer.Option(40, "--lines", "-n", help="How many lines from the end."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing what is added."),
) -> None:
    """Print the end of a part's log (and its location)."""
    with fail_on_runwire_error():
        stack = LocalStack()
        if part == "kafka" and stack.brokers > 1:
            chosen = [node.name for node in stack.kafka_nodes]
        else:
            chosen = [stack.part(part).name] if part else [p.name for p in stack.parts]
    files = [f for name in chosen for f in stack.part(name).log_files() if f.exists()]
    if not files:
        typer.echo(f"no logs yet under {stack.config.home}", err=True)
        raise typer.Exit(1)
    for f in files:
        typer.echo(f"==> {f} <==")
        text = tail(f, lines)
        if text:
            typer.echo(text)
    if follow:
        _follow(files)


@app.command()
def kill(part: str = typer.Argument(..., help=PART_HELP)) -> None:
    """kill -9 one part, as a crash would (a fault for testing); its data stays."""
    with fail_on_runwire_error():
        pid = asyncio.run(LocalStack().kill(part))
    console.print(f"killed {part} (pid {pid})" if pid else f"{part} was not running")


@app.command()
def start(part: str = typer.Argument(..., help=PART_HELP)) -> None:
    """Start one part again (after `kill` or a crash) and wait until it answers."""
    begun = time.monotonic()
    with fail_on_runwire_error(), console.status(f"starting {part}..."):
        started = asyncio.run(LocalStack().start(part))
    verb = "started" if started else "already running:"
    console.print(f"{verb} {part} in {time.monotonic() - begun:.1f}s")


def _follow(files: list[Path]) -> None:
    offsets = {f: f.stat().st_size for f in files}
    try:
        while True:
            for f in files:
                size = f.stat().st_size if f.exists() else 0
                if size < offsets[f]:  # rotated
                    offsets[f] = 0
                if size > offsets[f]:
                    with f.open("rb") as fh:
                        fh.seek(offsets[f])
                        typer.echo(fh.read().decode(errors="replace"), nl=False)
                    offsets[f] = size
            time.sleep(0.5)
    except KeyboardInterrupt:
        return


def _table(parts: list[PartStatus]) -> Table:
    table = Table(title="runwire local stack")
    table.add_column("part")
    table.add_column("state")
    table.add_column("address", no_wrap=True)
    table.add_column("pid", justify="right")
    for p in parts:
        state = "[green]running[/]" if p.running else "[red]stopped[/]"
        table.add_row(p.name, state, p.address, str(p.pid or ""))
    return table
