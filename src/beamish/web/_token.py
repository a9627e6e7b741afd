"""Signed tokens, as Phoenix.Token: hand a client a token, verify it when it connects.

A token carries JSON data, signed with a secret and a *salt* (a name for what the token is
for, so that a token made for one purpose is refused for another) and stamped with the time
it was made. It is signed, not encrypted: the client can read the data, not change it.
Signing and checking are itsdangerous's ``URLSafeTimedSerializer``.
"""

from __future__ import annotations

import time
from typing import Any

from itsdangerous import BadData, URLSafeTimedSerializer

from beamish._errors import BeamishError

__all__ = ["Token", "TokenError"]

DEFAULT_MAX_AGE = 86_400.0  # one day, as Phoenix.Token


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
    secret or salt, garbled), ``"missing"`` (``None`` or empty). The data must be JSON:
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
        max_age: float | None = DEFAULT_MAX_AGE,
    ) -> Any:
        """The data of a token made by ``sign`` with the same secret and salt.

        ``max_age`` is in seconds (one day by default; ``None``: no limit). Raises
        ``TokenError`` with ``reason`` ``"expired"``, ``"invalid"`` or ``"missing"``.
        """
        _check_secret(secret)
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
        if max_age is not None and time.time() - signed.timestamp() > max_age:
            raise TokenError("expired", f"the token is older than {max_age} seconds")
        return data


def _check_secret(secret: Any) -> None:
    if not isinstance(secret, str | bytes) or not secret:
        raise TypeError(
            f"a token secret must be a non-empty str or bytes (your app's secret key), got "
            f"{type(secret).__name__}"
        )
