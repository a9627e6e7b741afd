"""The ``beamish`` command: ``beamish run MODULE:APP``, ``beamish settings MODULE:APP``,
``beamish new NAME``."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any

import click

from beamish._errors import SettingsError
from beamish._otp.application.application import Application
from beamish.cli._logging import configure_logging
from beamish.cli._node import ClusterOptions, ExitCode, Service, run_node
from beamish.cli._target import load_application

# the edge limits' defaults, written out so that the help needs no web import to show them
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_MAX_HEADER_BYTES = 32_768
DEFAULT_MAX_HEADERS = 100
DEFAULT_KEEP_ALIVE_TIMEOUT = 5.0
DEFAULT_TICK_TIME = 60.0  # the cluster's (beamish.cluster.DEFAULT_TICK_TIME), likewise
DEFAULT_SYNC_TIMEOUT = 5.0  # beamish.cluster.DEFAULT_SYNC_TIMEOUT, likewise

__all__ = ["main", "services_for"]

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=_CONTEXT)
@click.version_option(package_name="beamish", prog_name="beamish", message="%(prog)s %(version)s")
def main() -> None:
    """beamish: Erlang/Elixir's process model and OTP for Python."""


SERVERS = ("uvicorn", "granian")


def services_for(
    app: Application, *, host: str = "127.0.0.1", port: int = 4000,
    graceful_timeout: float = 10.0, access_log: bool = False, server: str = "uvicorn",
    **limits: Any,
) -> list[Service]:
    """What runs beside ``app`` once it is up: its web endpoint, if it has one, served by
    ``server`` (``"uvicorn"`` or ``"granian"``).

    ``limits`` are ``EndpointServer``'s (``max_connections``, ``header_timeout``, ...).
    An application whose code never imported the web layer has no endpoint: nothing of the
    web layer (nor its extra's packages) is imported then.
    """
    if "beamish.web._endpoint" not in sys.modules:
        return []
    from beamish.web._serve import EndpointServer, find_endpoint
    from beamish.web._serve_granian import GranianEndpointServer

    try:
        endpoint = find_endpoint(app)
    except (LookupError, TypeError) as exc:
        raise click.UsageError(str(exc)) from None
    if endpoint is None:
        return []
    kind = {"uvicorn": EndpointServer, "granian": GranianEndpointServer}[server]
    try:
        return [kind(endpoint, host=host, port=port, graceful_timeout=graceful_timeout,
                     access_log=access_log, **limits)]
    except (ValueError, ModuleNotFoundError) as exc:
        raise click.UsageError(f"--server {server}: {exc}") from None


def node_services(app_name: str, node_name: str | None, app_dir: str, *, console: bool,
                  reload: bool) -> list[Service]:
    """The console and the reloader, as ``beamish run`` was asked for them."""
    found: list[Service] = []
    if console:
        from beamish.console import ConsoleServer

        name = node_name.partition("@")[0] if node_name else app_name
        cookie = os.environ.get("BEAMISH_COOKIE")  # the cluster's secret opens it too
        found.append(ConsoleServer(name, app_dir=app_dir,
                                   secret=cookie.encode() if cookie else None))
    if reload:
        from beamish.upgrade._reloader import Reloader

        found.append(Reloader(app_dir))
    return found


def _engine(url: str) -> Any:
    """The cluster's transport, made before the node's loop starts (importing an engine's
    client takes a while, and would hold the loop)."""
    try:
        from beamish.cluster import transport_for
    except ModuleNotFoundError as exc:
        click.echo(f"Error: --cluster needs the cluster extra (pip install 'beamish[cluster]'): "
                   f"{exc.name} is missing", err=True)
        raise SystemExit(ExitCode.CLUSTER_FAILED) from None
    try:
        transport = transport_for(url)
        transport.preload()
    except (ValueError, ModuleNotFoundError) as exc:
        click.echo(f"Error: --cluster {url!r}: {exc}", err=True)
        raise SystemExit(ExitCode.USAGE) from None
    return transport


@main.command(context_settings=_CONTEXT)
@click.argument("target", metavar="MODULE:APP")
@click.option(
    "--shutdown-timeout", type=click.FloatRange(min=0), default=30.0, show_default=True,
    envvar="BEAMISH_SHUTDOWN_TIMEOUT", show_envvar=True,
    help="Seconds the whole stop may take after SIGTERM or Ctrl-C; then what is left is "
    "killed. Keep it below your process manager's kill timeout.",
)
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info", show_default=True, envvar="BEAMISH_LOG_LEVEL", show_envvar=True,
    help="The lowest level logged (to stderr).",
)
@click.option(
    "--log-format", type=click.Choice(["text", "json"], case_sensitive=False), default="text",
    show_default=True, envvar="BEAMISH_LOG_FORMAT", show_envvar=True,
    help="Log records as readable lines (text) or one JSON object per line (json); both "
    "carry the pid, process name and request id of the process that logged.",
)
@click.option(
    "--app-dir", default=".", show_default=True, type=click.Path(file_okay=False),
    envvar="BEAMISH_APP_DIR", show_envvar=True,
    help="The directory to import MODULE from.",
)
@click.option(
    "--host", default="127.0.0.1", show_default=True, envvar="BEAMISH_HOST", show_envvar=True,
    help="The address the web endpoint listens on (if the application has one).",
)
@click.option(
    "--port", default=4000, show_default=True, type=click.IntRange(0, 65535),
    envvar="BEAMISH_PORT", show_envvar=True,
    help="The port the web endpoint listens on (0: any free port).",
)
@click.option(
    "--server", type=click.Choice(SERVERS, case_sensitive=False), default="uvicorn",
    show_default=True, envvar="BEAMISH_SERVER", show_envvar=True,
    help="The HTTP and WebSocket server: uvicorn, or granian (pip install "
    "'beamish[granian]'; no --max-headers, --keep-alive-timeout or compression).",
)
@click.option(
    "--access-log/--no-access-log", default=False, show_default=True,
    envvar="BEAMISH_ACCESS_LOG", show_envvar=True,
    help="Log one line per HTTP request (uvicorn's access log).",
)
@click.option(
    "--max-connections", type=click.IntRange(min=1), default=None,
    show_default="the file-descriptor limit (ulimit -n) less a tenth",
    envvar="BEAMISH_MAX_CONNECTIONS", show_envvar=True,
    help="Open connections of every kind (busy, idle, half-open, WebSocket); one more is "
    "answered 503 at once.",
)
@click.option(
    "--header-timeout", type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_HEADER_TIMEOUT, show_default=True,
    envvar="BEAMISH_HEADER_TIMEOUT", show_envvar=True,
    help="Seconds a request's head (request line and headers) may take to arrive; then 408 "
    "and the connection is closed (slowloris).",
)
@click.option(
    "--max-header-bytes", type=click.IntRange(min=1), default=DEFAULT_MAX_HEADER_BYTES,
    show_default=True, envvar="BEAMISH_MAX_HEADER_BYTES", show_envvar=True,
    help="The largest request head, in bytes; a larger one gets 431 (414 for the request "
    "line alone).",
)
@click.option(
    "--max-headers", type=click.IntRange(min=1), default=DEFAULT_MAX_HEADERS,
    show_default=True, envvar="BEAMISH_MAX_HEADERS", show_envvar=True,
    help="The most header lines a request may have; more get 431.",
)
@click.option(
    "--keep-alive-timeout", type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_KEEP_ALIVE_TIMEOUT, show_default=True,
    envvar="BEAMISH_KEEP_ALIVE_TIMEOUT", show_envvar=True,
    help="Seconds an idle keep-alive connection is kept open.",
)
@click.option(
    "--name", "node_name", default=None, envvar="BEAMISH_NODE_NAME", show_envvar=True,
    show_default="nonode@nohost; with --cluster, APP-PID@HOST",
    help="The node's name, as other nodes address it (chat@host).",
)
@click.option(
    "--cluster", "cluster_url", default=None, envvar="BEAMISH_CLUSTER", show_envvar=True,
    help="Join the cluster on this engine: nats://host:4222 or redis://host:6379. Every node "
    "needs the same secret in BEAMISH_COOKIE (at least 16 bytes).",
)
@click.option(
    "--cluster-name", default="beamish", show_default=True, envvar="BEAMISH_CLUSTER_NAME",
    show_envvar=True,
    help="Which cluster to join on the engine (one engine can carry several).",
)
@click.option(
    "--tick-time", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_TICK_TIME,
    show_default=True, envvar="BEAMISH_TICK_TIME", show_envvar=True,
    help="Seconds without a word from a node before it is declared down (the BEAM's "
    "net_ticktime).",
)
@click.option(
    "--sync-nodes", default="", envvar="BEAMISH_SYNC_NODES", show_envvar=True,
    help="Nodes (comma-separated names) to meet before the applications start, waiting at "
    "most --sync-timeout (Erlang's sync_nodes_optional): a Singleton then finds its server "
    "where it runs. --nodes sets it to the siblings.",
)
@click.option(
    "--sync-timeout", type=click.FloatRange(min=0), default=DEFAULT_SYNC_TIMEOUT,
    show_default=True, envvar="BEAMISH_SYNC_TIMEOUT", show_envvar=True,
    help="Seconds to wait for --sync-nodes; a node that has not come by then is not waited for.",
)
@click.option(
    "--nodes", default="1", show_default=True, envvar="BEAMISH_NODES", show_envvar=True,
    callback=lambda _ctx, _param, value: _node_count(value),
    help="Run N nodes (OS processes) of the application, or 'auto' for one per core: they "
    "share --host:--port and form one cluster (over --cluster, or sockets on this machine "
    "when it is not given). SIGHUP restarts them one at a time.",
)
@click.option(
    "--reload", is_flag=True, default=False, envvar="BEAMISH_RELOAD", show_envvar=True,
    help="Development: watch --app-dir and hot-swap each saved module into the running node "
    "(beamish.upgrade) instead of restarting it; sockets and state stay. A change that "
    "cannot be swapped is logged and the old code runs on.",
)
@click.option(
    "--console/--no-console", default=True, show_default=True, envvar="BEAMISH_CONSOLE",
    show_envvar=True,
    help="Open the node's console (a Unix socket only this user can open) for `beamish "
    "remote` and `beamish upgrade`.",
)
@click.option("--reuse-port", is_flag=True, hidden=True, envvar="BEAMISH_REUSE_PORT")
def run(
    target: str, shutdown_timeout: float, log_level: str, log_format: str, app_dir: str,
    host: str, port: int, server: str,
    access_log: bool, max_connections: int | None, header_timeout: float,
    max_header_bytes: int, max_headers: int, keep_alive_timeout: float,
    node_name: str | None, cluster_url: str | None, cluster_name: str, tick_time: float,
    sync_nodes: str, sync_timeout: float,
    nodes: int, reload: bool, console: bool, reuse_port: bool,
) -> None:
    """Run an application until SIGTERM or Ctrl-C.

    MODULE:APP names an Application subclass or instance (MODULE alone works when it
    defines exactly one). Its dependencies start first; on SIGTERM or SIGINT everything
    stops in reverse order, within --shutdown-timeout (a second signal within 1s of the
    first is taken as a copy of it; a later one cuts the stop short). If the application
    has a web endpoint (an `endpoint` attribute, or an Endpoint(application=APP) in
    MODULE), it is served with uvicorn (or --server granian) on --host and --port.

    Every option can also be set by the environment variable shown beside it.

    \b
    Exit codes:
      0  stopped cleanly (signal, or every application stopped normally)
      1  the application or a dependency failed to start
      2  usage error: bad arguments, or MODULE:APP could not be imported
      3  an application stopped on its own (e.g. its root supervisor gave up)
      4  the stop was cut short (timeout, or a later signal); the rest was killed
      5  the web endpoint could not listen on --host:--port (e.g. the port is in use)
      6  the node could not join its cluster (engine unreachable, or no secret)

    With --nodes N, the same codes: 1, 2, 5 or 6 when a node failed to start, 3 when a
    node kept exiting on its own (more than 3 restarts within 5s), 4 when a node's stop was
    cut short.
    """
    configure_logging(log_level, log_format.lower())
    app = load_application(target, app_dir)
    services = services_for(
        app, host=host, port=port, graceful_timeout=shutdown_timeout / 3,
        server=server.lower(), access_log=access_log, max_connections=max_connections,
        header_timeout=header_timeout, max_header_bytes=max_header_bytes,
        max_headers=max_headers, keep_alive_timeout=keep_alive_timeout, reuse_port=reuse_port,
    )
    if nodes > 1 and reload:
        raise click.UsageError("--reload runs one node: leave out --nodes")
    if nodes > 1:
        from beamish.cli._siblings import SiblingOptions, run_siblings

        # every option the nodes share, as the environment variable `beamish run` reads it
        ctx = click.get_current_context()
        env = {
            str(param.envvar): str(ctx.params[param.name])
            for param in ctx.command.params
            if isinstance(param, click.Option) and param.envvar and param.name
            and param.name not in _PER_NODE and ctx.params[param.name] is not None
        }
        env["BEAMISH_APP_DIR"] = os.path.abspath(app_dir)
        code = run_siblings(SiblingOptions(
            target=target, count=nodes, app_name=app.name, env=env, host=host,
            port=port if services else None, shutdown_timeout=shutdown_timeout,
            node_name=node_name, cluster_url=cluster_url,
        ))
        raise SystemExit(int(code))
    cluster = None
    if cluster_url is not None:
        if node_name is None:
            node_name = f"{app.name}-{os.getpid()}@{socket.gethostname()}"
        cluster = ClusterOptions(
            _engine(cluster_url), cluster_name, tick_time,
            tuple(n.strip() for n in sync_nodes.split(",") if n.strip()), sync_timeout,
        )
    services = [*services, *node_services(app.name, node_name, app_dir, console=console,
                                          reload=reload)]
    ready = os.environ.pop("BEAMISH_READY_FD", None)  # a --nodes parent's: not inherited
    code = run_node(app, shutdown_timeout=shutdown_timeout, services=services,
                    node_name=node_name, cluster=cluster,
                    ready_fd=int(ready) if ready and ready.isdigit() else None)
    raise SystemExit(int(code))


# what the --nodes parent sets for each node itself
_PER_NODE = frozenset({"nodes", "reuse_port", "node_name", "port"})


def _node_count(value: str | int) -> int:
    if isinstance(value, int):
        return value
    if value.strip().lower() == "auto":
        return os.cpu_count() or 1
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise click.BadParameter(f"a number of nodes (1 or more) or 'auto', got {value!r}")
    return count


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
        cells = "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False))
        click.echo(f"{cells}  {row[3]}")
    if problems:
        raise SystemExit(int(ExitCode.START_FAILED))


@main.command(context_settings=_CONTEXT)
@click.argument("name")
@click.option(
    "--path", "directory", type=click.Path(file_okay=False), default=None,
    help="Where to write the project.  [default: ./NAME]",
)
@click.option(
    "--beamish", "requirement", default=None, metavar="REQUIREMENT",
    help="The requirement line the project installs beamish with (e.g. 'beamish[web] @ "
    "git+https://...').  [default: where this beamish comes from]",
)
def new(name: str, directory: str | None, requirement: str | None) -> None:
    """Write a new project NAME that runs, with its tests.

    \b
    It has:
      NAME/application.py  an Application: PubSub and a supervised, named GenServer
      NAME/web.py          the endpoint's page, socket and channel (the phoenix client)
      tests/               tests that run as beamish processes
      Makefile             make run (serves it on :4000), make test
    """
    from beamish.cli._new import ProjectError, new_project

    try:
        path = new_project(name, None if directory is None else Path(directory),
                           requirement=requirement)
    except ProjectError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"wrote the project {name!r} in {path}")
    click.echo(f"next:  cd {os.path.relpath(path)}  then  make test  and  make run")


@main.command(context_settings=_CONTEXT)
@click.argument("node", required=False)
def remote(node: str | None) -> None:
    """Open a Python console inside a running node (like `iex --remsh`).

    NODE is the node's console name: its --name without the host, or its application's
    name (leave it out when one node runs here). The console connects over the node's Unix
    socket (mode 0600, this user only) with the node's secret (BEAMISH_COOKIE, or the
    cookie file the node wrote beside its socket). Inputs run inside the node, in a process
    of their own, with top-level await; Ctrl-C cancels one that awaits; Ctrl-D leaves the
    console and the node runs on.

    \b
    Exit codes: 0 closed, 1 the console could not be opened.
    """
    from beamish.console._client import ConsoleError, find_console, repl

    try:
        raise SystemExit(repl(find_console(node)))
    except ConsoleError as exc:
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(1) from None


@main.command(context_settings=_CONTEXT)
@click.argument("modules", nargs=-1)
@click.option("--node", "-n", default=None,
              help="The node's console name (default: the only node running here).")
@click.option("--plan", default=None, metavar="MODULE",
              help="A module of the new code that defines `upgrade = Upgrade(...)`: which "
              "modules to load and the extra their code_change gets.")
@click.option("--extra", default=None, metavar="JSON",
              help="The `extra` every code_change gets, as JSON.")
def upgrade(modules: tuple[str, ...], node: str | None, plan: str | None,
            extra: str | None) -> None:
    """Upgrade a running node to the code on disk, without stopping it.

    MODULES are module names (myapp.counter); with none and no --plan, every module the
    node loaded from its --app-dir whose source changed since is upgraded. Each process
    running their code is held between two messages, moved to the new code and given
    code_change(old_vsn, state, extra); if anything fails, nothing changes and the error
    is printed.

    \b
    Exit codes: 0 upgraded (or nothing to do), 1 the upgrade failed (nothing changed) or
    the node's console could not be opened, 2 bad arguments.
    """
    import json

    from beamish.console._client import ConsoleClient, ConsoleError, find_console

    try:
        value = json.loads(extra) if extra is not None else None
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--extra") from None
    try:
        client = ConsoleClient(find_console(node))
        try:
            answer = client.upgrade(list(modules), plan, value)
        finally:
            client.close()
    except ConsoleError as exc:
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(1) from None
    if not answer.get("ok"):
        click.echo(f"Error: {answer.get('error')}", err=True)
        raise SystemExit(1)
    click.echo(answer.get("report"))
