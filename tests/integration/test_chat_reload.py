"""`beamish run --reload` on the chat demo, in Chromium: a channel's handle_in is edited on
disk while two pages chat; the next message gets the new behaviour, no WebSocket was ever
closed or opened again, and presence never said anyone left.

The demo is copied to a directory of the test's (the repository's files are never edited);
its phoenix client comes from the repository's node_modules.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.integration.support import ROOT, SERVING, Lines
from tests.integration.test_chat_browser import CHROMIUM_ARGS, WAIT_MS, chromium

UPGRADED = re.compile(r"upgraded examples\.chat\.channels: (\d+) classes, \d+ functions, "
                      r"(\d+) processes changed")
NEW_POST = "body.strip())"
EDITED_POST = 'body.strip().upper() + " (hot-swapped)")'


def test_reload_swaps_a_channel_under_two_pages_without_dropping_a_socket(tmp_path: Path):
    executable = chromium()
    from playwright.sync_api import expect, sync_playwright

    (tmp_path / "examples").mkdir()
    shutil.copytree(ROOT / "examples" / "chat", tmp_path / "examples" / "chat",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "examples" / "web_assets.py", tmp_path / "examples")  # the chat's
    (tmp_path / "node_modules").symlink_to(ROOT / "node_modules")
    channels = tmp_path / "examples" / "chat" / "channels.py"
    assert channels.read_text().count(NEW_POST) == 1
    env = {**os.environ, "BEAMISH_CONSOLE_DIR": str(tmp_path / "consoles"),
           "PYTHONDONTWRITEBYTECODE": "1"}
    node = subprocess.Popen(
        [sys.executable, "-m", "beamish", "run", "examples.chat.app:Chat", "--port", "0",
         "--reload", "--app-dir", str(tmp_path), "--shutdown-timeout", "10"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    assert node.stderr is not None
    log = Lines(node.stderr)
    try:
        url = log.until(SERVING.search, "the chat to serve").group(1)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                                 args=CHROMIUM_ARGS)
            try:
                opened: list[str] = []
                closed: list[str] = []
                leaves: list[object] = []
                problems: list[str] = []

                def watch(name: str, socket) -> None:
                    opened.append(name)
                    socket.on("close", lambda _: closed.append(name))

                    def frame(payload) -> None:
                        message = json.loads(payload)  # [join_ref, ref, topic, event, payload]
                        if message[3] == "presence_diff" and message[4].get("leaves"):
                            leaves.append(message[4]["leaves"])

                    socket.on("framereceived", frame)

                def open_page(name: str):
                    page = browser.new_context().new_page()
                    page.on("websocket", lambda socket: watch(name, socket))
                    page.on("pageerror", lambda error: problems.append(f"{name}: {error}"))
                    page.goto(url)
                    page.fill("#username", name)
                    page.fill("#room", "hot")
                    page.click("#join button[type=submit]")
                    expect(page.locator("#room-name")).to_have_text("#hot", timeout=WAIT_MS)
                    return page

                ada, bob = open_page("ada"), open_page("bob")
                expect(ada.locator("#online li")).to_have_text(["ada", "bob"],
                                                              timeout=WAIT_MS)
                ada.fill("#body", "before the edit")
                ada.press("#body", "Enter")
                expect(bob.locator("#messages li .text")).to_have_text(["before the edit"],
                                                                       timeout=WAIT_MS)

                channels.write_text(channels.read_text().replace(NEW_POST, EDITED_POST))
                swapped = log.until(UPGRADED.search, "the reloader to swap channels.py")
                assert int(swapped.group(2)) >= 2  # both pages' channel processes

                ada.fill("#body", "after the edit")
                ada.press("#body", "Enter")
                expect(bob.locator("#messages li .text")).to_have_text(
                    ["before the edit", "AFTER THE EDIT (hot-swapped)"], timeout=WAIT_MS)
                bob.fill("#body", "and back")
                bob.press("#body", "Enter")
                expect(ada.locator("#messages li .text")).to_have_text(
                    ["before the edit", "AFTER THE EDIT (hot-swapped)",
                     "AND BACK (hot-swapped)"], timeout=WAIT_MS)

                # a change that cannot be swapped: said once, and the old code runs on
                channels.write_text(channels.read_text() + "\ndef broken(:\n")
                log.until(lambda line: "upgrade failed; nothing was changed" in line
                          and "syntax error" in line, "the reloader to refuse the edit")
                ada.fill("#body", "still here")
                ada.press("#body", "Enter")
                expect(bob.locator("#messages li .text").last).to_have_text(
                    "STILL HERE (hot-swapped)", timeout=WAIT_MS)
                expect(ada.locator("#online li")).to_have_text(["ada", "bob"],
                                                              timeout=WAIT_MS)

                assert opened == ["ada", "bob"]  # one WebSocket each, never reopened
                assert closed == []
                assert leaves == []  # presence never flickered
                assert not problems, problems
                failures = [line for line in log.seen if "upgrade failed" in line]
                assert len(failures) == 1, failures
            finally:
                browser.close()
    finally:
        if node.poll() is None:
            node.terminate()
            try:
                node.wait(timeout=20)
            except subprocess.TimeoutExpired:
                node.kill()
                node.wait()
        log.close()
        node.stderr.close()
