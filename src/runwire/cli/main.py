"""The root of the ``runwire`` command: each concern adds its own sub-app here."""

from __future__ import annotations

import typer

from runwire.cli import (
    approvals,
    asyncapi,
    chat,
    demo,
    dlq,
    projections,
    publish,
    run,
    runs,
    serve,
    sessions,
    stack,
    topics,
    transcript,
    tree,
    usage,
    users,
)

app = typer.Typer(
    name="runwire",
    help="Event-sourced backbone for AI-agent conversations.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def _root() -> None:
    """Event-sourced backbone for AI-agent conversations."""


app.add_typer(stack.app, name="stack")
app.add_typer(topics.app, name="topics")
app.command(name="demo")(demo.demo)
app.command(name="publish")(publish.publish)
app.command(name="run")(run.run)
app.command(name="chat")(chat.chat)
app.add_typer(run.app, name="runs")
runs.add_commands(run.app)
approvals.add_commands(run.app)
tree.add_commands(run.app)
app.add_typer(sessions.app, name="sessions")
app.add_typer(projections.app, name="projections")
app.add_typer(dlq.app, name="dlq")
app.add_typer(users.app, name="users")
app.command(name="serve")(serve.serve)
app.command(name="transcript")(transcript.transcript)
app.command(name="asyncapi")(asyncapi.asyncapi)
app.command(name="usage")(usage.usage)


@app.command()
def version() -> None:
    """Print runwire's version."""
    from runwire import __version__

    typer.echo(__version__)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
