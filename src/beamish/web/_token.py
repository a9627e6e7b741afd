"""Signed tokens, as Phoenix.Token: hand a client a token, verify it when it connects.

A token carries JSON data, signed with a secret and a *salt* (a name for what the token is
for, so that a token made for one purpose is refused for another) and stamped with the time
it was made. It is signed, not encrypted: the client can read the data, not change it.
Signing and checking are itsdangerous's ``URLSafeTimedSerializer``.

A token stamped later than now is refused (reason ``"invalid"``), however long ``max_age``
is: its age would be negative, so a time limit would not bound it. Clocks of the machines
that sign and verify may disagree a little, so ``clock_skew`` seconds (one minute by
default) of future are tolerated. Phoenix.Token takes any future stamp; this is stricter.
"""

from __future__ import annotations

import time
from typing import Any

from itsdangerous import BadData, URLSafeTimedSerializer

from beamish._errors import BeamishError

__all__ = ["Token", "TokenError"]

DEFAULT_MAX_AGE = 86_400.0  # one day, as Phoenix.Token
DEFAULT_CLOCK_SKEW = 60.0  # seconds a token's stamp may be ahead of this machine's clock


class TokenError(BeamishError, ValueError):
    """A token that ``Token.verify`` refuses; ``reason`` is ``"expired"``, ``"invalid"`` or
    ``"missing"`` (Phoenix's ``{:error, reason}``)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Token:
    """Sign data for a client and verify it later (Phoenix.Token)::

        token = Token.sign(SECRET, "user socket", {"user_id": 42})
        ...
        data = Token.verify(SECRET, "user socket", token, max_age=86_400)

    ``verify`` returns the data, or raises ``TokenError`` whose ``reason`` says why:
    ``"expired"`` (older than ``max_age`` seconds), ``"invalid"`` (bad signature, other
    secret or salt, garbled, or stamped more than ``clock_skew`` seconds in the future),
    ``"missing"`` (``None`` or empty). The data must be JSON:
    dicts, lists, strings, numbers, booleans, ``None``.
    """

    @staticmethod
    def sign(
        secret: str | bytes, salt: str, data: Any, *, signed_at: float | None = None
    ) -> str:
        """A URL-safe token carrying ``data``, stamped now (or at ``signed_at``, a Unix time)."""
        _check_secret(secret)
        serializer = URLSafeTimedSerializer(secret, salt=salt)
        try:
            payload = serializer.dump_payload(data)
        except TypeError as exc:
            raise TypeError(f"Token.sign() needs JSON data, got {data!r}: {exc}") from None
        signer = serializer.make_signer(salt)
        if signed_at is not None:
            stamp = int(signed_at)
            signer.get_timestamp = lambda: stamp  # type: ignore[attr-defined]
        return signer.sign(payload).decode()

    @staticmethod
    def verify(
        secret: str | bytes, salt: str, token: str | None, *,
        max_age: float | None = DEFAULT_MAX_AGE, clock_skew: float = DEFAULT_CLOCK_SKEW,
    ) -> Any:
        """The data of a token made by ``sign`` with the same secret and salt.

        ``max_age`` is in seconds (one day by default; ``None``: no limit). ``clock_skew``
        is how many seconds a token's stamp may be ahead of this clock (60 by default); one
        further in the future is invalid, whatever ``max_age`` says. Raises ``TokenError``
        with ``reason`` ``"expired"``, ``"invalid"`` or ``"missing"``.
        """
        _check_secret(secret)
        if isinstance(clock_skew, bool) or not isinstance(clock_skew, int | float) or not (
            clock_skew >= 0
        ):
            raise ValueError(f"clock_skew must be seconds >= 0, got {clock_skew!r}")
        if not token:
            raise TokenError("missing", "no token was given (None or empty)")
        if not isinstance(token, str):
            raise TokenError("invalid", f"a token is a str, got {type(token).__name__}")
        signer = URLSafeTimedSerializer(secret, salt=salt)
        try:
            data, signed = signer.loads(token, return_timestamp=True)
        except BadData:
            raise TokenError(
                "invalid", "the token is invalid: bad signature, another secret or salt, or "
                "garbled"
            ) from None
        age = time.time() - signed.timestamp()
        if -age > clock_skew:
            raise TokenError(
                "invalid", f"the token is stamped {-age:.0f} seconds in the future, more than "
                f"the clock_skew of {clock_skew} seconds allows: it was not made by a signer "
                "with a sound clock (check the clocks of the machines that sign tokens)"
            )
        if max_age is not None and age > max_age:
            raise TokenError("expired", f"the token is older than {max_age} seconds")
        return data


def _check_secret(secret: Any) -> None:
    if not isinstance(secret, str | bytes) or not secret:
        raise TypeError(
            f"a token secret must be a non-empty str or bytes (your app's secret key), got "
            f"{type(secret).__name__}"
        )
