"""`beamish new NAME`: the project it writes passes its own tests and serves its page."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from websockets.sync.client import connect

from beamish.cli import ExitCode, main
from beamish.cli._new import PHOENIX_VERSION, class_name

ROOT = Path(__file__).resolve().parents[2]
WAIT = 60  # seconds; only reached if something is broken
SERVING = re.compile(r"serving <Endpoint of \w+> on (http://127\.0\.0\.1:\d+)")


def generate(tmp_path: Path, name: str = "my_shop", *args: str) -> Path:
    result = CliRunner().invoke(main, ["new", name, "--path", str(tmp_path / name), *args])
    assert result.exit_code == 0, result.output
    assert f"wrote the project {name!r} in {tmp_path / name}" in result.output
    return tmp_path / name


def environment(project: Path) -> dict[str, str]:
    """This checkout's beamish and the project, importable; no pytest options from outside."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(project)])
    return env


def test_new_writes_a_project_whose_own_tests_pass(tmp_path):
    project = generate(tmp_path)
    files = sorted(p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file())
    assert files == [
        ".gitignore", "Makefile", "README.md", "my_shop/__init__.py", "my_shop/application.py",
        "my_shop/counter.py", "my_shop/static/app.js", "my_shop/static/index.html",
        "my_shop/web.py", "package.json", "pyproject.toml", "tests/test_counter.py",
        "tests/test_web.py",
    ]
    makefile = (project / "Makefile").read_text()
    assert "\nrun: " in makefile and "\ntest: " in makefile
    assert "\tbeamish run my_shop.application:MyShop" in makefile.replace("$(BIN)/", "")
    # its tests, with pytest as `make test` runs it (pytest-asyncio, if here, left out)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:asyncio"],
        cwd=project, env=environment(project), capture_output=True, text=True, timeout=WAIT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def test_new_project_serves_its_page_and_channel_under_beamish_run(tmp_path):
    project = generate(tmp_path)
    (project / "node_modules").symlink_to(ROOT / "node_modules")  # what `npm install` gives
    proc = subprocess.Popen(
        [sys.executable, "-m", "beamish.cli", "run", "my_shop.application:MyShop", "--port", "0"],
        cwd=project, env=environment(project), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if found := SERVING.search(line):
                break
        else:
            raise AssertionError("exited before serving:\n" + "".join(seen))
        url = found.group(1)
        with httpx.Client(base_url=url, timeout=WAIT) as client:
            page = client.get("/")
            assert page.status_code == 200 and "/assets/app.js" in page.text
            script = client.get("/assets/app.js")
            assert 'from "/vendor/phoenix/phoenix.mjs"' in script.text
            phoenix = client.get("/vendor/phoenix/phoenix.mjs")
            assert phoenix.status_code == 200 and "Socket\n};" in phoenix.text  # its exports
        # the channel, as the phoenix client speaks to it
        with connect(url.replace("http", "ws") + "/socket/websocket?vsn=2.0.0") as ws:
            ws.send(json.dumps(["1", "1", "counter:lobby", "phx_join", {}]))
            assert json.loads(ws.recv(timeout=WAIT)) == [
                "1", "1", "counter:lobby", "phx_reply",
                {"status": "ok", "response": {"count": 0}},
            ]
            ws.send(json.dumps(["1", "2", "counter:lobby", "increment", {}]))
            replies = [json.loads(ws.recv(timeout=WAIT)) for _ in range(2)]
            assert ["1", "2", "counter:lobby", "phx_reply",
                    {"status": "ok", "response": {"count": 1}}] in replies
            assert [None, None, "counter:lobby", "count", {"count": 1}] in replies
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=WAIT) == ExitCode.OK, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


def test_new_records_where_beamish_comes_from(tmp_path):
    line = "beamish[web] @ git+https://example.test/beamish"
    project = generate(tmp_path, "shop2", "--beamish", line)
    assert f'"{line}",' in (project / "pyproject.toml").read_text()
    default = generate(tmp_path, "shop3")
    assert f'"beamish[web] @ {ROOT.as_uri()}",' in (default / "pyproject.toml").read_text()


def test_new_uses_the_phoenix_client_of_this_checkout(tmp_path):
    ours = json.loads((ROOT / "package.json").read_text())["dependencies"]["phoenix"]
    assert ours == PHOENIX_VERSION
    project = generate(tmp_path)
    theirs = json.loads((project / "package.json").read_text())
    assert theirs["dependencies"] == {"phoenix": ours}  # from npm, never a copied file
    assert not list(project.rglob("phoenix*.js")) and not list(project.rglob("phoenix.mjs"))


@pytest.mark.parametrize(("name", "message"), [
    ("MyShop", "a project name is a Python package name"),
    ("my-shop", "a project name is a Python package name"),
    ("asyncio", "would hide a module of the same name"),
    ("beamish", "would hide a module of the same name"),
    ("class", "would hide a module of the same name"),
])
def test_new_refuses_a_name_that_cannot_be_a_package(tmp_path, name, message):
    result = CliRunner().invoke(main, ["new", name, "--path", str(tmp_path / "x")])
    assert result.exit_code == ExitCode.USAGE
    assert message in result.output
    assert not (tmp_path / "x").exists()


def test_new_never_writes_over_a_directory(tmp_path):
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "keep.txt").write_text("mine")
    result = CliRunner().invoke(main, ["new", "shop", "--path", str(tmp_path / "shop")])
    assert result.exit_code == ExitCode.USAGE
    assert "exists and is not an empty directory; nothing written" in result.output
    assert [p.name for p in (tmp_path / "shop").iterdir()] == ["keep.txt"]


def test_class_name():
    assert class_name("my_shop") == "MyShop"
    assert class_name("shop") == "Shop"
