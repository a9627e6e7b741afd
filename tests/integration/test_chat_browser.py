"""The chat demo end to end in headless Chromium (Debian's), driven by Python Playwright.

Two pages, two users, one room: what one sends the other shows, and each one's list of who
is online follows the other joining, leaving and closing the page. Then the same with one
page whose browser has no WebSocket, so that its phoenix client talks LongPoll. Every wait
is Playwright's auto-waiting ``expect`` on the page's content: no sleep.
"""

from __future__ import annotations

import re
import shutil
import threading

import httpx

from tests.integration.support import require

WAIT_MS = 30_000  # for each expectation; only reached when something is broken
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


def chromium() -> str:
    found = require(shutil.which("chromium"), "chromium is missing: install Debian's chromium "
                    "(apt-get install chromium; `make test` does)")
    return str(found)


def test_chat_in_chromium_two_users_talk_and_see_who_is_online(chat_node):
    executable = chromium()
    from playwright.sync_api import expect, sync_playwright

    server = chat_node()
    url = server.url()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            problems: list[str] = []

            def open_page(name: str):
                page = browser.new_context().new_page()  # a context each: two users

                def console(message) -> None:
                    if message.type == "error":
                        problems.append(f"{name}'s console: {message.text}")

                page.on("console", console)
                page.on("pageerror", lambda error: problems.append(f"{name}'s page: {error}"))
                page.goto(url)
                return page

            def join(page, name: str) -> None:
                page.fill("#username", name)
                page.fill("#room", "e2e")
                page.click("#join button[type=submit]")
                expect(page.locator("#room-name")).to_have_text("#e2e", timeout=WAIT_MS)

            ada, bob = open_page("ada"), open_page("bob")
            join(ada, "ada")
            expect(ada.locator("#status")).to_have_text("online", timeout=WAIT_MS)
            expect(ada.locator("#online li")).to_have_text(["ada"], timeout=WAIT_MS)
            join(bob, "bob")
            expect(ada.locator("#online li")).to_have_text(["ada", "bob"], timeout=WAIT_MS)
            expect(bob.locator("#online li")).to_have_text(["ada", "bob"], timeout=WAIT_MS)

            ada.fill("#body", "hello from ada <b>not bold</b>")
            ada.press("#body", "Enter")
            shown = bob.locator("#messages li")
            expect(shown).to_have_count(1, timeout=WAIT_MS)
            expect(shown.locator(".user")).to_have_text("ada")
            expect(shown.locator(".text")).to_have_text("hello from ada <b>not bold</b>")
            expect(ada.locator("#messages li.mine .text")).to_have_text(
                "hello from ada <b>not bold</b>", timeout=WAIT_MS
            )
            expect(ada.locator("#body")).to_have_value("")

            bob.click("#leave")  # leaving the room...
            expect(bob.locator("#join")).to_be_visible(timeout=WAIT_MS)
            expect(ada.locator("#online li")).to_have_text(["ada"], timeout=WAIT_MS)

            join(bob, "bob")  # ...coming back: the history is there...
            expect(bob.locator("#messages li .text")).to_have_text(
                ["hello from ada <b>not bold</b>"], timeout=WAIT_MS
            )
            expect(ada.locator("#online li")).to_have_text(["ada", "bob"], timeout=WAIT_MS)
            bob.close()  # ...and closing the page
            expect(ada.locator("#online li")).to_have_text(["ada"], timeout=WAIT_MS)
            assert not problems, problems

            # the server stops cleanly with a page connected, and the page says so
            assert server.stop() == 0, server.log.text
            expect(ada.locator("#status")).to_have_text("reconnecting…", timeout=WAIT_MS)
        finally:
            browser.close()


NO_WEBSOCKET = "Object.defineProperty(window, 'WebSocket', {value: undefined})"


def test_chat_in_chromium_over_longpoll_where_websockets_are_missing(chat_node):
    """A page without WebSocket: the phoenix client takes its LongPoll transport by itself."""
    executable = chromium()
    from playwright.sync_api import expect, sync_playwright

    server = chat_node()
    url = server.url()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            problems: list[str] = []

            def open_page(name: str, websocket: bool):
                context = browser.new_context()
                if not websocket:
                    context.add_init_script(NO_WEBSOCKET)
                page = context.new_page()
                page.on("pageerror", lambda error: problems.append(f"{name}'s page: {error}"))
                page.goto(url)
                page.fill("#username", name)
                page.fill("#room", "lp")
                page.click("#join button[type=submit]")
                expect(page.locator("#room-name")).to_have_text("#lp", timeout=WAIT_MS)
                return page

            ada = open_page("ada", websocket=True)
            bob = open_page("bob", websocket=False)
            assert bob.evaluate("typeof WebSocket") == "undefined"
            polled = ("performance.getEntriesByType('resource')"
                      ".filter((e) => e.name.includes('/socket/longpoll')).length")
            assert bob.evaluate(polled) > 0 and ada.evaluate(polled) == 0
            expect(bob.locator("#status")).to_have_text("online", timeout=WAIT_MS)
            expect(ada.locator("#online li")).to_have_text(["ada", "bob"], timeout=WAIT_MS)
            expect(bob.locator("#online li")).to_have_text(["ada", "bob"], timeout=WAIT_MS)

            bob.fill("#body", "hello over long polls")
            bob.press("#body", "Enter")
            expect(ada.locator("#messages li .text")).to_have_text(
                ["hello over long polls"], timeout=WAIT_MS
            )
            ada.fill("#body", "and back over a websocket")
            ada.press("#body", "Enter")
            expect(bob.locator("#messages li .text")).to_have_text(
                ["hello over long polls", "and back over a websocket"], timeout=WAIT_MS
            )
            bob.click("#leave")
            expect(ada.locator("#online li")).to_have_text(["ada"], timeout=WAIT_MS)
            assert not problems, problems
        finally:
            browser.close()


def test_chat_on_two_nodes_pages_on_different_nodes_talk_and_see_who_is_online(tmp_path):
    """`beamish run --nodes 2`: the kernel spreads the pages' connections over the two
    nodes; two pages that reached different nodes chat and see each other online."""
    from playwright.sync_api import expect, sync_playwright

    from tests.integration.support import ChatNode

    executable = chromium()
    server = ChatNode(0, "--nodes", "2")
    try:
        url = server.url()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=executable, headless=True, args=CHROMIUM_ARGS
            )
            try:
                by_node: dict[str, object] = {}
                for n in range(20):  # new connections until both nodes have a page
                    page = browser.new_context().new_page()
                    page.goto(url)
                    page.fill("#username", f"user{n}")
                    page.fill("#room", "nodes")
                    page.click("#join button[type=submit]")
                    expect(page.locator("#node")).to_have_text(re.compile("^node "),
                                                               timeout=WAIT_MS)
                    node = page.locator("#node").inner_text()
                    if node in by_node:
                        page.context.close()
                        continue
                    by_node[node] = (f"user{n}", page)
                    if len(by_node) == 2:
                        break
                assert len(by_node) == 2, f"every page reached {set(by_node)}"
                (ada, ada_page), (bob, bob_page) = by_node.values()  # type: ignore[misc]
                for page in (ada_page, bob_page):  # presence crosses the nodes
                    expect(page.locator("#online li")).to_have_text(sorted([ada, bob]),
                                                                    timeout=WAIT_MS)
                ada_page.fill("#body", "across the nodes")
                ada_page.press("#body", "Enter")
                shown = bob_page.locator("#messages li .text")
                expect(shown).to_have_text(["across the nodes"], timeout=WAIT_MS)
                ada_page.screenshot(path=str(tmp_path / "nodes.png"))
            finally:
                browser.close()
    finally:
        code = server.stop()
        server.close()
    assert code == 0


def test_the_dashboard_in_chromium_shows_the_node_and_a_killed_process_comes_back(
    chat_node, tmp_path,
):
    executable = chromium()
    from playwright.sync_api import expect, sync_playwright

    url = chat_node().url()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            problems: list[str] = []
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("pageerror", lambda error: problems.append(f"page: {error}"))
            page.goto(url + "/dashboard/")
            expect(page.locator("#status")).to_have_text("live", timeout=WAIT_MS)
            expect(page.locator("[data-card=node] .value")).to_contain_text("@",
                                                                           timeout=WAIT_MS)
            expect(page.locator("#banner")).to_contain_text("development mode")
            page.screenshot(path=str(tmp_path / "dashboard-home.png"))
            page.click("nav a[data-page=processes]")
            page.fill("#search", "Poller")
            row = page.locator("#rows tr").first
            expect(row).to_contain_text("Poller", timeout=WAIT_MS)
            before = row.get_attribute("data-pid")
            row.click()
            expect(page.locator("#details-title")).to_have_text(before, timeout=WAIT_MS)
            page.screenshot(path=str(tmp_path / "dashboard-processes.png"))
            page.click("#kill")
            expect(page.locator("#details-body")).to_contain_text("was killed", timeout=WAIT_MS)
            # its supervisor starts another: the table shows a Poller with a new pid
            expect(page.locator("#rows tr").first).not_to_have_attribute(
                "data-pid", before, timeout=WAIT_MS
            )
            expect(page.locator("#rows tr").first).to_contain_text("Poller")
            after = page.locator("#rows tr").first.get_attribute("data-pid")
            # the Applications page draws the chat's tree, with the new Poller in it
            page.click("nav a[data-page=applications]")
            tree = page.locator("[data-app=chat] .tree")
            expect(tree).to_contain_text("chat.supervisor", timeout=WAIT_MS)
            expect(tree).to_contain_text("chat.room_supervisor")
            expect(tree.locator(f"[data-pid='{after}']")).to_have_count(1, timeout=WAIT_MS)
            expect(tree.locator(f"[data-pid='{before}']")).to_have_count(0)
            page.screenshot(path=str(tmp_path / "dashboard-applications.png"))
            page.click("nav a[data-page=sockets]")
            expect(page.locator("#topics")).to_contain_text("dashboard:live", timeout=WAIT_MS)
            expect(page.locator("[data-card='DashboardSocket over websocket'] .value")
                   ).to_have_text("1")
            page.screenshot(path=str(tmp_path / "dashboard-sockets.png"))
            page.click("nav a[data-page=data]")
            expect(page.locator("#pools tr[data-pool='chat.db']")).to_contain_text(
                "chat.db", timeout=WAIT_MS)
            # the request logger: a killed process's supervisor report shows up live
            page.click("nav a[data-page=processes]")
            page.fill("#search", "Poller")
            expect(page.locator("#rows tr").first).to_contain_text("Poller", timeout=WAIT_MS)
            page.locator("#rows tr").first.click()  # its details stay open on every page
            page.click("nav a[data-page=logs]")  # the logs are watched while shown
            page.select_option("#log-level", "warning")
            page.click("#kill")
            expect(page.locator("#log-lines")).to_contain_text("beamish.supervisor",
                                                                timeout=WAIT_MS)
            page.screenshot(path=str(tmp_path / "dashboard-logs.png"))
            # the metrics chart moves while the endpoint is loaded
            loading = threading.Event()

            def load() -> None:
                with httpx.Client(base_url=url) as client:
                    while not loading.is_set():
                        client.get("/health")

            loader = threading.Thread(target=load, daemon=True)
            loader.start()
            try:
                page.click("nav a[data-page=metrics]")
                chart = page.locator("[data-metric=beamish_endpoint_requests]")
                expect(chart.locator(".uplot")).to_have_count(1, timeout=WAIT_MS)
                page.wait_for_function(
                    "() => { const c = document.querySelector("
                    "'[data-metric=beamish_endpoint_requests]');"
                    " return c && Number(c.dataset.points) >= 3 && Number(c.dataset.last) > 0; }",
                    timeout=WAIT_MS,
                )
                page.screenshot(path=str(tmp_path / "dashboard-metrics.png"))
            finally:
                loading.set()
                loader.join(timeout=10)
            assert not problems, problems
        finally:
            browser.close()
