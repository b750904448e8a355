"""The compiled depth-frame scanner reads a frame exactly as orjson plus the converters do.

Whatever it returns equals what ``orjson.loads`` and the memoised converters
give; whatever it cannot vouch for (another layout, an escape, an exponent, a
string the converters reject) it hands back as None, and the feed then parses
the frame the ordinary way. A feed gives the same books, messages and counts
with and without it.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernel.adapters.base import STAT_NAMES, RawFrame
from kernel.adapters.binance import feed as feed_module
from kernel.adapters.binance.feed import BinanceFeed, Market
from kernel.book import accel
from kernel.bus import Bus
from kernel.recording.readers import open_frames
from tradekernel_sdk.fixedpoint import FixedConverter, FixedPointError

compiled = pytest.importorskip("kernel.book._accel", reason="the C extension is not built")

_ROOT = Path(__file__).resolve().parents[2]
_BUNDLED = sorted((_ROOT / "kernel" / "data" / "binance_spot").glob("*.gz"))
_SHARED = _ROOT.parent / "shared" / "data" / "orderbook"
_RECORDED = [
    *_BUNDLED,
    *sorted(_SHARED.glob("binance_spot/*.gz")),
    *sorted(_SHARED.glob("binance_usdm/*.gz")),
]


def _reference(payload: bytes, precisions: dict[str, tuple[int, int]]) -> object:
    """What the feed's ordinary path reads from a frame: the values, or the error's type."""
    try:
        message = orjson.loads(payload)
        data = message["data"]
        price_precision, size_precision = precisions[message["stream"]]
        prices = FixedConverter(price_precision)
        sizes = FixedConverter(size_precision)
        return (
            message["stream"],
            data["E"],
            data["U"],
            data["u"],
            data.get("pu"),
            accel.python_fixed_levels(data["b"], prices, sizes),
            accel.python_fixed_levels(data["a"], prices, sizes),
        )
    except (orjson.JSONDecodeError, FixedPointError, KeyError, TypeError, ValueError) as error:
        return type(error)


def _agrees(payload: bytes, precisions: dict[str, tuple[int, int]]) -> bool:
    """True when the scanner declines the frame or reads exactly what the reference reads."""
    scanned = compiled.depth_frame(payload, precisions)
    return scanned is None or scanned == _reference(payload, precisions)


def _depth_frames(path: Path) -> Iterator[bytes]:
    for frame in open_frames(path):
        if b'"depthUpdate"' in frame.payload[:100]:
            yield frame.payload


def _precisions(path: Path) -> dict[str, tuple[int, int]]:
    """Every depth stream of a recording at the precisions of the feed's catalogue."""
    market: Market = "usdm" if "usdm" in path.parent.name else "spot"
    feed = BinanceFeed(Bus(), market)
    for frame in islice(open_frames(path), 400):
        feed.on_frame(frame)
    return dict(feed._depth_precisions)


@pytest.mark.parametrize("path", _RECORDED, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_every_recorded_depth_frame_is_read_by_the_scanner_as_the_reference_reads_it(
    path: Path,
) -> None:
    precisions = _precisions(path)
    assert precisions, "the first frames route at least one depth stream"
    count = 0
    for payload in _depth_frames(path):
        scanned = compiled.depth_frame(payload, precisions)
        assert scanned is not None, payload[:200]  # the venue's own layout is never declined
        assert scanned == _reference(payload, precisions)
        count += 1
    assert count > 100


# -- generated frames ------------------------------------------------------------

_DIGITS = st.text("0123456789", min_size=1, max_size=20)
_DECIMAL = st.builds(
    lambda whole, fraction: whole + ("." + fraction if fraction is not None else ""),
    _DIGITS,
    st.none() | st.text("0123456789", max_size=20),
)
_LEVEL_TEXT = st.one_of(
    _DECIMAL,
    st.sampled_from(["", ".", ".5", "-1.5", "+1", "1e5", "1E5", " 1", "1.2.3", "١", "NaN"]),
    st.text(max_size=6),
)
_ID = st.one_of(
    st.integers(0, 10**18 - 1),
    st.integers(-5, 5),
    st.sampled_from([10**18, 2**63 - 1, 2**63, 2**64, 10**30]),
)
_STREAM = st.sampled_from(["btcusdt@depth@100ms", "ethusdt@depth@0ms", "xyz@depth"])
_NAME = st.one_of(_STREAM, st.text(max_size=8))


def _text(value: str) -> bytes:
    return orjson.dumps(value)  # escapes what JSON needs escaped


def _frame(parts: dict[str, Any]) -> bytes:
    """A frame in the venue's layout built from its parts (optional fields when present)."""

    def levels(side: list[tuple[str, str]]) -> bytes:
        return b"[" + b",".join(b"[" + _text(p) + b"," + _text(q) + b"]" for p, q in side) + b"]"

    fields = [b'"e":"depthUpdate"', b'"E":%d' % parts["E"]]
    if parts["T"] is not None:
        fields.append(b'"T":%d' % parts["T"])
    fields += [b'"s":' + _text(parts["s"]), b'"U":%d' % parts["U"], b'"u":%d' % parts["u"]]
    if parts["pu"] is not None:
        fields.append(b'"pu":%d' % parts["pu"])
    fields += [b'"b":' + levels(parts["b"]), b'"a":' + levels(parts["a"])]
    return b'{"stream":' + _text(parts["stream"]) + b',"data":{' + b",".join(fields) + b"}}"


_LEVELS = st.lists(st.tuples(_LEVEL_TEXT, _LEVEL_TEXT), max_size=6)
_PARTS = st.fixed_dictionaries(
    {
        "stream": _NAME,
        "E": _ID,
        "T": st.none() | _ID,
        "s": st.sampled_from(["BTCUSDT", "", 'a"b', "a\\b", "é", "\x01"]),
        "U": _ID,
        "u": _ID,
        "pu": st.none() | _ID,
        "b": _LEVELS,
        "a": _LEVELS,
    }
)
_PRECISIONS = st.dictionaries(
    _STREAM, st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=3
)


@settings(max_examples=600)
@given(_PARTS, _PRECISIONS)
def test_a_frame_in_the_venue_layout_is_read_as_the_reference_reads_it(
    parts: dict[str, Any], precisions: dict[str, tuple[int, int]]
) -> None:
    assert _agrees(_frame(parts), precisions)


def _edits(payload: bytes) -> st.SearchStrategy[bytes]:
    """The frame cut short, with a byte changed, inserted or removed anywhere."""
    at = st.integers(0, len(payload))
    byte = st.sampled_from([*b' \t\n,:"\\[]{}-+.eE0159aZ', 0x80, 0xFF])
    return st.one_of(
        at.map(lambda index: payload[:index]),
        st.tuples(at, byte).map(lambda e: payload[: e[0]] + bytes([e[1]]) + payload[e[0] :]),
        st.tuples(at, byte).map(lambda e: payload[: e[0]] + bytes([e[1]]) + payload[e[0] + 1 :]),
        at.map(lambda index: payload[:index] + payload[index + 1 :]),
    )


@settings(max_examples=600)
@given(st.data(), _PARTS, _PRECISIONS)
def test_an_edited_frame_is_read_as_the_reference_reads_it_or_handed_back(
    data: st.DataObject, parts: dict[str, Any], precisions: dict[str, tuple[int, int]]
) -> None:
    payload = data.draw(_edits(_frame(parts)))
    assert _agrees(payload, precisions)


def test_the_usual_frame_is_read_and_other_layouts_are_handed_back() -> None:
    precisions = {"btcusdt@depth@100ms": (2, 5)}
    usual = (
        b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161255208,'
        b'"s":"BTCUSDT","U":50093239189,"u":50093239202,'
        b'"b":[["61737.63000000","0.00120000"],["61730.17","0"]],"a":[]}}'
    )
    assert compiled.depth_frame(usual, precisions) == (
        "btcusdt@depth@100ms",
        1723161255208,
        50093239189,
        50093239202,
        None,
        [(6173763, 120), (6173017, 0)],
        [],
    )
    for other in (
        usual.replace(b'"s":"BTCUSDT",', b""),  # a field missing
        usual.replace(b'"E":', b'"E": '),  # whitespace
        usual.replace(b'"0.00120000"', b'"1.2e-3"'),  # an exponent
        usual.replace(b'"BTCUSDT"', b'"BTC\\u0055SDT"'),  # an escape
        usual.replace(b',"a":[]', b',"a":[],"x":1'),  # an extra field
        usual.replace(b'"0.00120000"', b'"0.001200001"'),  # past the size precision
        usual + b" ",
        bytearray(usual),
    ):
        assert compiled.depth_frame(other, precisions) is None, other
    assert compiled.depth_frame(usual, {}) is None  # a stream the feed has not routed


# -- the feed with and without the scanner ------------------------------------------


def _replay(path: Path, market: Market) -> tuple[list[object], dict[str, Any], Any]:
    bus = Bus()
    published: list[object] = []
    bus.subscribe(">", published.append)
    feed = BinanceFeed(bus, market)
    for frame in open_frames(path):
        feed.on_frame(frame)
    # A gap, a broken frame and a resync: the ordinary path's cases.
    feed.on_frame(RawFrame(0, b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate"}}'))
    books = {
        symbol: (book.bids, book.asks, book.sequence)
        for symbol in feed.symbols
        if (book := feed.book(symbol)) is not None
    }
    return published, {name: getattr(feed.stats, name) for name in STAT_NAMES}, books


# The bundled spot slice, and a USD-M recording (the futures chain rule) when present.
_REPLAYED = [*_BUNDLED, *sorted(_SHARED.glob("binance_usdm/*.gz"))[:1]]


@pytest.mark.parametrize("path", _REPLAYED, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_a_feed_publishes_the_same_with_and_without_the_scanner(path: Path) -> None:
    market: Market = "usdm" if "usdm" in path.parent.name else "spot"
    scanned = _replay(path, market)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(feed_module, "depth_frame", None)
        assert _replay(path, market) == scanned
