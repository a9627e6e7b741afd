"""The console's wire: JSON objects, one per line, over a Unix socket; and its handshake.

A line is at most ``MAX_LINE`` bytes (1 MiB): a longer one is refused with an error that
says so, and the connection closed. Nothing received is evaluated as anything but the
text of a console input, and only after the handshake.

The handshake proves that the client knows the node's secret without sending it: the node
sends ``{"challenge": <32 random bytes, hex>}``; the client answers ``{"proof":
HMAC-SHA256(secret, challenge), hex}``; the node compares in constant time and answers
``{"ok": true, "node": ..., "pid": ...}`` or ``{"ok": false, "error": ...}`` and closes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from typing import Any

__all__ = ["MAX_LINE", "WireError", "challenge", "decode", "encode", "proof"]

MAX_LINE = 1 << 20


class WireError(ValueError):
    """A line that is not a console message."""


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    if len(line) > MAX_LINE:
        raise WireError(f"a console line is at most {MAX_LINE} bytes, got {len(line)}")
    try:
        found = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WireError(f"a console line is one JSON object: {exc}") from None
    if type(found) is not dict:
        raise WireError(f"a console line is one JSON object, got {type(found).__name__}")
    return found


def challenge() -> str:
    return os.urandom(32).hex()


def proof(secret: bytes, nonce: str) -> str:
    return hmac.new(secret, nonce.encode(), hashlib.sha256).hexdigest()


def verify(secret: bytes, nonce: str, answer: Any) -> bool:
    return type(answer) is str and hmac.compare_digest(proof(secret, nonce), answer)
