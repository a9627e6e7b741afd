"""Token: signed data for clients, verified on connect (Phoenix.Token)."""

from __future__ import annotations

import time

import pytest

from beamish.web import Token, TokenError
from beamish.web._token import DEFAULT_CLOCK_SKEW

SECRET = "a secret key base of some length"


def test_token_round_trip():
    token = Token.sign(SECRET, "user socket", {"user_id": 42})
    assert Token.verify(SECRET, "user socket", token) == {"user_id": 42}


@pytest.mark.parametrize(
    ("secret", "salt", "token", "reason"),
    [
        ("another secret", "user socket", None, "invalid"),
        (SECRET, "another salt", None, "invalid"),
        (SECRET, "user socket", "garbled.token.here", "invalid"),
        (SECRET, "user socket", "", "missing"),
    ],
)
def test_token_verify_refuses(secret, salt, token, reason):
    if token is None:
        token = Token.sign(SECRET, "user socket", 1)
    elif token == "":
        token = None if reason == "missing" else token
    with pytest.raises(TokenError) as refused:
        Token.verify(secret, salt, token)
    assert refused.value.reason == reason


def test_token_max_age():
    token = Token.sign(SECRET, "s", "data", signed_at=time.time() - 100)
    assert Token.verify(SECRET, "s", token, max_age=200) == "data"
    assert Token.verify(SECRET, "s", token, max_age=None) == "data"
    with pytest.raises(TokenError) as expired:
        Token.verify(SECRET, "s", token, max_age=50)
    assert expired.value.reason == "expired"


def test_token_needs_a_secret_and_json():
    with pytest.raises(TypeError, match="secret"):
        Token.sign("", "s", 1)
    with pytest.raises(TypeError, match="JSON"):
        Token.sign(SECRET, "s", object())


def test_token_stamped_in_the_future_is_refused_beyond_the_clock_skew():
    ten_years = 10 * 365 * 86_400
    for max_age in (86_400, None):
        token = Token.sign(SECRET, "s", "data", signed_at=time.time() + ten_years)
        with pytest.raises(TokenError) as refused:
            Token.verify(SECRET, "s", token, max_age=max_age)
        assert refused.value.reason == "invalid"
        assert "in the future" in str(refused.value) and "clock_skew" in str(refused.value)


def test_token_clock_skew_admits_a_signer_whose_clock_is_a_little_ahead():
    token = Token.sign(SECRET, "s", "data", signed_at=time.time() + DEFAULT_CLOCK_SKEW / 2)
    assert Token.verify(SECRET, "s", token) == "data"
    with pytest.raises(TokenError) as refused:
        Token.verify(SECRET, "s", token, clock_skew=0)
    assert refused.value.reason == "invalid"
    with pytest.raises(ValueError, match="clock_skew"):
        Token.verify(SECRET, "s", token, clock_skew=-1)
