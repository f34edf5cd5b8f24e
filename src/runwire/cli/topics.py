"""``runwire topics show | apply``: the topics file and its provisioning."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console
from rich.table import Table

from runwire.cli.common import fail_on_runwire_error
from runwire.infra.topics import TOPICS_FILE, load_topics, provision_topics
from runwire.settings import Settings

app = typer.Typer(help="Declared Kafka topics and their provisioning.", no_args_is_help=True)
console = Console()


@app.command()
def show() -> None:
    """Print the topics file as the current settings name the topics."""
    settings = Settings()
    with fail_on_runwire_error():
        specs = load_topics()
    table = Table(title=str(TOPICS_FILE))
    for column in ("id", "topic", "partitions", "key", "configs"):
        table.add_column(column)
    for spec in specs:
        configs = ", ".join(f"{k}={v}" for k, v in spec.configs_for(settings).items())
        table.add_row(spec.id, settings.topic_for(spec.id), str(spec.partitions), spec.key, configs)
    console.print(table)


@app.command()
def apply() -> None:
    """Create missing topics and reconcile configs on RUNWIRE_KAFKA_BOOTSTRAP_SERVERS.

    Never deletes a topic or changes a partition count.
    """
    settings = Settings()
    with fail_on_runwire_error():
        report = asyncio.run(provision_topics(settings))
    console.print(f"provisioned topics on {settings.kafka_bootstrap_servers}")
    for line in report.lines():
        console.print(f"  {line}")
