"""What the examples' pages load from npm: the stock phoenix client and uPlot (the charts).

``npm ci`` (which ``make run`` and ``make test`` run) installs them under ``node_modules``;
nothing from them is copied into the repository. ``serve_vendor(router)`` serves both at
``vendor/phoenix`` and ``vendor/uplot`` under the router's mount point, and, where npm has
not run, answers their paths with a 503 that says what to do.
"""

from __future__ import annotations

import logging
from pathlib import Path

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from beamish.web import Router

ROOT = Path(__file__).resolve().parents[1]
PHOENIX = ROOT / "node_modules" / "phoenix" / "priv" / "static"
UPLOT = ROOT / "node_modules" / "uplot" / "dist"

log = logging.getLogger("examples")


def serve_vendor(router: Router, *, uplot: bool = True) -> None:
    """Serve the phoenix client (and uPlot) under ``/vendor`` of ``router``."""
    packages = [("phoenix", PHOENIX)] + ([("uplot", UPLOT)] if uplot else [])
    for name, directory in packages:
        if directory.is_dir():
            router.static(f"/vendor/{name}", directory=directory, name=name)
        else:
            router.get(f"/vendor/{name}/{{file:path}}", name=name)(_missing)


def check_vendor() -> None:
    """Warn at start when the pages' packages are not installed."""
    for directory in (PHOENIX, UPLOT):
        if not directory.is_dir():
            log.warning("the pages need %s, which is not installed: run `npm ci` in the "
                        "repository root (make does)", directory.relative_to(ROOT))


async def _missing(request: Request) -> Response:
    return PlainTextResponse(
        "this page's scripts are not installed: run `npm ci` in the repository root, then "
        "restart the server", status_code=503,
    )
