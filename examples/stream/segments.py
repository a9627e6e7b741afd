"""The stream's pictures: a test card, drawn as SVG, one a segment. Pure.

The built-in broadcaster (``studio.Camera``) has no camera: it draws a test card, colour
bars with a clock, a frame counter and a ball that moves, padded with a fine grid to the
size a segment of real video would have (10 to 50 KB). A segment on the wire is one binary
frame: a JSON line (its number and the time it was made) and the SVG after it.

    >>> svg = test_card(7, at=0.0, size=12_000)
    >>> 12_000 <= len(svg) < 12_400 and svg.startswith(b"<svg")
    True
    >>> head, body = split(encode(7, 1.5, svg))
    >>> head, body == svg
    ({'seq': 7, 'at': 1500}, True)
"""

from __future__ import annotations

import json
import math
import time

BARS = ("#c0c0c0", "#c0c000", "#00c0c0", "#00c000", "#c000c0", "#c00000", "#0000c0")
WIDTH, HEIGHT = 640, 360


def test_card(seq: int, *, at: float, size: int) -> bytes:
    """Frame ``seq`` of the test card, about ``size`` bytes of SVG (at least the picture)."""
    bar = WIDTH / len(BARS)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}">']
    parts += [f'<rect x="{i * bar:.1f}" y="0" width="{bar + 1:.1f}" height="{HEIGHT}" '
              f'fill="{colour}"/>' for i, colour in enumerate(BARS)]
    angle = seq / 10
    x = WIDTH / 2 + math.cos(angle) * 220
    y = HEIGHT / 2 + math.sin(angle * 1.7) * 120
    clock = time.strftime("%H:%M:%S", time.gmtime(at)) + f".{int(at * 10) % 10}"
    parts += [
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="28" fill="#fff" stroke="#111" stroke-width="4"/>',
        '<rect x="170" y="140" width="300" height="80" rx="10" fill="#111" opacity=".85"/>',
        f'<text x="320" y="178" font-size="30" font-family="monospace" fill="#fff" '
        f'text-anchor="middle">{clock}</text>',
        f'<text x="320" y="208" font-size="18" font-family="monospace" fill="#9fe" '
        f'text-anchor="middle">frame {seq}</text>',
    ]
    picture = "".join(parts)
    grid = []
    used = len(picture) + 6  # "</svg>"
    step = 0
    while used < size:  # the padding: a faint grid, one line at a time
        line = (f'<path d="M{step % WIDTH} 0V{HEIGHT}" stroke="#000" stroke-opacity=".02"/>')
        grid.append(line)
        used += len(line)
        step += 7
    return (picture + "".join(grid) + "</svg>").encode()


def encode(seq: int, at: float, svg: bytes) -> bytes:
    """A segment as it goes out: a JSON line, then the picture."""
    return json.dumps({"seq": seq, "at": round(at * 1000)}).encode() + b"\n" + svg


def split(segment: bytes) -> tuple[dict[str, int], bytes]:
    """The head and the picture of an encoded segment."""
    head, _, body = segment.partition(b"\n")
    return json.loads(head), body
