"""The WebSocket origin check, pure."""

from __future__ import annotations

import pytest

from beamish.web._origin import make_origin_check, parse_allowed


def test_origin_same_host_by_default():
    check = make_origin_check(True)
    assert check("https://example.com", "example.com")
    assert check("http://localhost:4000", "localhost:4000")
    assert check("https://example.com", "example.com:443")
    assert not check("https://evil.com", "example.com")
    assert not check("http://localhost:4001", "localhost:4000")
    assert not check("null", "example.com")


def test_origin_missing_header_passes():
    for option in (True, ["https://example.com"], lambda origin: False):
        assert make_origin_check(option)(None, "example.com")


def test_origin_check_off():
    assert make_origin_check(False)("https://evil.com", "example.com")


def test_origin_list_forms():
    check = make_origin_check(
        ["https://example.com", "//other.com", "//ports.com:8443", "//*.wild.org"]
    )
    assert check("https://example.com", None)
    assert not check("http://example.com", None)  # scheme given: must match
    assert not check("https://example.com:8443", None)  # port defaults to the scheme's
    assert check("http://other.com", None) and check("https://other.com:9", None)
    assert check("https://ports.com:8443", None) and not check("https://ports.com", None)
    assert check("https://wild.org", None) and check("https://a.b.wild.org", None)
    assert not check("https://notwild.org", None)


def test_origin_function():
    check = make_origin_check(lambda origin: origin.endswith(".trusted"))
    assert check("https://x.trusted", "h")
    assert not check("https://x.untrusted", "h")


@pytest.mark.parametrize("bad", ["https://example.com", 42])
def test_origin_bad_option_teaches(bad):
    with pytest.raises(ValueError, match="check_origin takes True"):
        make_origin_check(bad)


@pytest.mark.parametrize("bad", ["example.com", "https://example.com/path", "//"])
def test_origin_bad_allowed_entry_teaches(bad):
    with pytest.raises(ValueError, match="origin"):
        parse_allowed(bad)
