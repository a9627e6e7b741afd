"""What a client sent, clipped before it reaches a log line."""

from beamish.web._clip import LOG_TEXT_LIMIT, clip, clip_text


def test_clip_leaves_short_values_as_repr_shows_them():
    assert clip("room:lobby") == "'room:lobby'"
    assert clip(b"\x00ab") == "b'\\x00ab'"
    assert clip({"body": "hi"}) == "{'body': 'hi'}"
    assert clip_text("a plain message") == "a plain message"


def test_clip_keeps_the_first_characters_and_tells_the_whole_size():
    topic = "room:" + "é" * 1000  # 2 bytes each in UTF-8
    clipped = clip(topic)
    assert clipped == repr(topic[:LOG_TEXT_LIMIT]) + "…(2005 bytes)"
    assert clip(b"x" * 5000) == repr(b"x" * LOG_TEXT_LIMIT) + "…(5000 bytes)"
    payload = {"data": "y" * 10_000}
    assert clip(payload) == repr(payload)[:LOG_TEXT_LIMIT] + f"…({len(repr(payload))} chars)"
    assert clip_text(ValueError("z" * 300)) == "z" * LOG_TEXT_LIMIT + "…(300 bytes)"
    assert clip("abc", limit=2) == "'ab'…(3 bytes)"
