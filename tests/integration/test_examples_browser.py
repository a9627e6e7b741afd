"""``make run``'s application in headless Chromium: the landing page, the live dashboard
and the live stream, each with two browsers (two contexts: two users) acting on what the
other sees. Every wait is Playwright's auto-waiting ``expect`` or a polled page value; a
screenshot of each page is written to the test's directory.
"""

from __future__ import annotations

import re

import pytest

from tests.integration.support import ChatNode
from tests.integration.test_chat_browser import CHROMIUM_ARGS, WAIT_MS, chromium

SHOWCASE = "examples.showcase.app:Showcase"


@pytest.fixture
def showcase(chat_database, tmp_path):
    node = ChatNode(0, env={"ANALYTICS_INTERVAL": "0.25", "ANALYTICS_RATE": "5000",
                            "FEED_DATABASE": str(tmp_path / "feed.sqlite3")},
                    app=SHOWCASE)
    yield node
    node.close()


@pytest.fixture
def browser():
    executable = chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


def open_page(browser, url, problems, name):
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.on("console", lambda m: m.type == "error" and problems.append(f"{name}: {m.text}"))
    page.on("pageerror", lambda error: problems.append(f"{name}'s page: {error}"))
    page.goto(url)
    return page


def test_the_landing_page_leads_to_every_example(showcase, browser, tmp_path):
    from playwright.sync_api import expect

    url = showcase.url()
    problems: list[str] = []
    page = open_page(browser, url + "/", problems, "visitor")
    page.screenshot(path=tmp_path / "landing.png", full_page=True)
    for card, heading in (("chat", "chat"), ("feed", "feed"),
                          ("analytics", "live dashboard"), ("stream", "live stream")):
        page.click(f"a#{card}")
        expect(page.locator("h1")).to_contain_text(heading, timeout=WAIT_MS)
        if card not in ("chat", "feed"):  # online once a room is joined, once signed in
            expect(page.locator("#status")).to_have_text("online", timeout=WAIT_MS)
        page.go_back()
    page.click("a#dashboard")
    expect(page).to_have_url(f"{url}/dashboard/", timeout=WAIT_MS)
    assert not problems, problems


def test_the_live_dashboard_two_viewers_see_one_stream_and_an_incident_one_of_them_starts(
    showcase, browser, tmp_path
):
    from playwright.sync_api import expect

    url = showcase.url() + "/analytics/"
    problems: list[str] = []
    ada, bob = (open_page(browser, url, problems, name) for name in ("ada", "bob"))
    for page in (ada, bob):
        expect(page.locator("#status")).to_have_text("online", timeout=WAIT_MS)
        expect(page.locator(".card")).to_have_count(6, timeout=WAIT_MS)
    frame = lambda page: int(page.locator("#seq").inner_text())  # noqa: E731
    first = frame(bob)
    bob.wait_for_function(f"Number(document.getElementById('seq').textContent) > {first + 3}",
                          timeout=WAIT_MS)  # frames keep coming, a quarter second apart
    counted = lambda page: int(page.locator("#counted").inner_text().replace(",", ""))  # noqa: E731
    assert counted(ada) > 0 and page_lost(ada) == 0

    expect(bob.locator("#incident-state")).to_be_hidden()
    ada.click("#incident")  # ada starts an incident; bob's page shows it and the errors rise
    expect(bob.locator("#incident-state")).to_be_visible(timeout=WAIT_MS)
    errors = bob.locator('.card[data-metric="errors"] .now')
    bob.wait_for_function(
        """() => parseFloat(document.querySelector('.card[data-metric="errors"] .now')
                 .textContent.replace(/,/g, '')) > 500""", timeout=WAIT_MS)  # 100/s before
    assert errors.inner_text()
    ada.screenshot(path=tmp_path / "analytics.png", full_page=True)
    assert page_lost(bob) == 0
    assert not problems, problems


def page_lost(page) -> int:
    return int(page.locator("#lost").inner_text())


def test_the_live_stream_two_viewers_count_each_other_chat_and_a_late_one_sees_a_picture(
    showcase, browser, tmp_path
):
    from playwright.sync_api import expect

    url = showcase.url() + "/stream/"
    problems: list[str] = []
    ada = open_page(browser, url, problems, "ada")
    expect(ada.locator("#status")).to_have_text("online", timeout=WAIT_MS)
    expect(ada.locator("#viewers")).to_have_text("1", timeout=WAIT_MS)
    bob = open_page(browser, url, problems, "bob")
    for page in (ada, bob):
        expect(page.locator("#viewers")).to_have_text("2", timeout=WAIT_MS)
    # the picture changes ten times a second: the segment number climbs on both pages
    for page in (ada, bob):
        start = int(page.locator("#seq").inner_text())
        page.wait_for_function(
            f"Number(document.getElementById('seq').textContent) >= {start + 5}",
            timeout=WAIT_MS)
        assert page.locator("#picture").get_attribute("src").startswith("blob:")

    bob.fill("#name", "bob")
    bob.click("#name-form button")
    expect(bob.locator("#compose")).to_be_visible(timeout=WAIT_MS)
    bob.fill("#body", "hello from bob <i>not italic</i>")
    bob.press("#body", "Enter")
    expect(ada.locator("#messages li")).to_have_text(
        ["bobhello from bob <i>not italic</i>"], timeout=WAIT_MS)
    expect(ada.locator("#messages .user")).to_have_text(["bob"])
    expect(ada.locator("#compose")).to_be_hidden()  # ada gave no name: she only watches

    late = open_page(browser, url, problems, "late")  # joins late: a picture at once,
    expect(late.locator("#messages li")).to_have_count(1, timeout=WAIT_MS)  # and the chat
    late.wait_for_function("document.getElementById('picture').src.startsWith('blob:')",
                           timeout=WAIT_MS)
    for page in (ada, bob, late):
        expect(page.locator("#viewers")).to_have_text("3", timeout=WAIT_MS)
    late.close()
    expect(ada.locator("#viewers")).to_have_text("2", timeout=WAIT_MS)
    ada.screenshot(path=tmp_path / "stream.png", full_page=True)
    assert not problems, problems


def test_the_feed_two_users_follow_post_like_and_reply_live(showcase, browser, tmp_path):
    from playwright.sync_api import expect

    url = showcase.url() + "/feed/"
    problems: list[str] = []
    ada, bob = (open_page(browser, url, problems, name) for name in ("ada", "bob"))

    def sign_in(page, name):
        page.fill("#name", name)
        page.click("#signin button")
        expect(page.locator("#me")).to_have_text(f"@{name}", timeout=WAIT_MS)
        expect(page.locator("#status")).to_have_text("online", timeout=WAIT_MS)

    sign_in(ada, "ada")
    sign_in(bob, "bob")
    for page in (ada, bob):
        expect(page.locator("#online li span")).to_have_text(["ada", "bob"], timeout=WAIT_MS)
    ada.fill("#body", "before bob follows")
    ada.press("#body", "Enter")
    expect(ada.locator("#posts .post .text")).to_have_text(["before bob follows"],
                                                           timeout=WAIT_MS)
    bob.reload()  # bob's suggestions now list ada (she exists): sign in again
    sign_in(bob, "bob")
    bob.locator("#suggestions li", has_text="ada").locator("button").click()
    # following ada resets bob's timeline with her window: her earlier post is there
    expect(bob.locator("#posts .post .text")).to_have_text(["before bob follows"],
                                                           timeout=WAIT_MS)
    expect(bob.locator("#following li span")).to_have_text(["ada"], timeout=WAIT_MS)

    ada.fill("#body", "hello <b>bob</b>")  # live, on bob's page, on top
    ada.press("#body", "Enter")
    expect(bob.locator("#posts .post .text").first).to_have_text("hello <b>bob</b>",
                                                                 timeout=WAIT_MS)
    newest_on_bob = bob.locator("#posts .post").first
    newest_on_bob.locator("button.like").click()  # bob likes it: ada sees the count
    expect(ada.locator("#posts .post").first.locator("button.like")).to_have_text(
        "\u2665 1", timeout=WAIT_MS)
    expect(newest_on_bob.locator("button.like")).to_have_class(re.compile("on"),
                                                               timeout=WAIT_MS)
    newest_on_bob.locator("button.replies").click()  # and replies in the thread
    newest_on_bob.locator(".thread input").fill("hi ada")
    newest_on_bob.locator(".thread input").press("Enter")
    expect(ada.locator("#posts .post").first.locator("button.replies")).to_have_text(
        "\u21a9 1", timeout=WAIT_MS)
    ada.locator("#posts .post").first.locator("button.replies").click()
    expect(ada.locator("#posts .post").first.locator(".thread .reply")).to_have_text(
        ["bob hi ada"], timeout=WAIT_MS)
    # bob's reply is a post of his; ada does not follow him: not in her timeline
    expect(ada.locator("#posts .post .text")).to_have_count(2)
    bob.screenshot(path=tmp_path / "feed.png", full_page=True)
    assert not problems, problems
