"""The ``beamish`` command: ``beamish run MODULE:APP``, ``beamish settings MODULE:APP``."""

from __future__ import annotations

import os

import click

from beamish._errors import SettingsError
from beamish._otp.application import Application
from beamish.cli._logging import configure_logging
from beamish.cli._node import ExitCode, Service, run_node
from beamish.cli._target import load_application

__all__ = ["main", "services_for"]

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=_CONTEXT)
@click.version_option(package_name="beamish", prog_name="beamish", message="%(prog)s %(version)s")
def main() -> None:
    """beamish: Erlang/Elixir's process model and OTP for Python."""


def services_for(app: Application) -> list[Service]:
    """What runs beside ``app`` once it is up. The web layer adds its endpoint here."""
    return []


@main.command(context_settings=_CONTEXT)
@click.argument("target", metavar="MODULE:APP")
@click.option(
    "--shutdown-timeout", type=click.FloatRange(min=0), default=30.0, show_default=True,
    envvar="BEAMISH_SHUTDOWN_TIMEOUT",
    help="Seconds the whole stop may take after SIGTERM or Ctrl-C; then what is left is "
    "killed. Keep it below your process manager's kill timeout.",
)
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info", show_default=True, envvar="BEAMISH_LOG_LEVEL",
    help="The lowest level logged (to stderr).",
)
@click.option(
    "--app-dir", default=".", show_default=True, type=click.Path(file_okay=False),
    help="The directory to import MODULE from.",
)
def run(target: str, shutdown_timeout: float, log_level: str, app_dir: str) -> None:
    """Run an application until SIGTERM or Ctrl-C.

    MODULE:APP names an Application subclass or instance (MODULE alone works when it
    defines exactly one). Its dependencies start first; on SIGTERM or SIGINT everything
    stops in reverse order, within --shutdown-timeout.

    \b
    Exit codes:
      0  stopped cleanly (signal, or every application stopped normally)
      1  the application or a dependency failed to start
      2  usage error: bad arguments, or MODULE:APP could not be imported
      3  an application stopped on its own (e.g. its root supervisor gave up)
      4  the stop was cut short (timeout, or a second signal); the rest was killed
    """
    configure_logging(log_level)
    app = load_application(target, app_dir)
    code = run_node(app, shutdown_timeout=shutdown_timeout, services=services_for(app))
    raise SystemExit(int(code))


@main.command(context_settings=_CONTEXT)
@click.argument("target", metavar="MODULE:APP")
@click.option(
    "--app-dir", default=".", show_default=True, type=click.Path(file_okay=False),
    help="The directory to import MODULE from.",
)
def settings(target: str, app_dir: str) -> None:
    """Show the environment variables an application reads, and check them.

    Exits with 1 if one is missing or cannot be read, 2 for a usage error.
    """
    app = load_application(target, app_dir)
    cls = app.settings_class()
    variables = cls.variables(app.env_prefix)
    if not variables:
        click.echo(f"{app.name} reads no environment variables ({cls.__qualname__} is empty)")
        return
    problems: dict[str, str] = {}
    try:
        cls.from_env(app.env_prefix)
    except SettingsError as error:
        problems = dict(error.errors)
    rows = [("VARIABLE", "TYPE", "DEFAULT", "STATUS")]
    for v in variables:
        default = "(required)" if v.required else repr(v.default)
        status = problems.get(v.name) or ("set" if v.name in os.environ else "default")
        rows.append((v.name, v.expected, default, status))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + row[3])
    if problems:
        raise SystemExit(int(ExitCode.START_FAILED))
