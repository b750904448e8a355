"""The gRPC API's protos follow their style rules, mirror the SDK, and generate cleanly.

The style rules are the key rules of Buf's STANDARD and COMMENTS lint sets
(``protos/buf.yaml``), checked here with a line-based parser so that no Buf
binary is needed.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import importlib.util
import re
import subprocess
import sys
from decimal import Decimal as PyDecimal
from pathlib import Path
from typing import TypeVar

import msgspec
import pytest
from google.protobuf import json_format
from google.protobuf.message import Message

from kernel.plugins.manager import PluginInfo, PluginStatus
from kernel.risk.messages import DenialReason, TradingState
from tradekernel_sdk import orders, strategy, types
from tradekernel_sdk.fixedpoint import from_fixed, to_fixed
from tradekernel_sdk.proto.tradekernel.v1 import (
    components_pb2,
    market_data_pb2,
    orders_pb2,
    orders_pb2_grpc,
    plugins_pb2,
    risk_pb2,
    types_pb2,
)

ROOT = Path(__file__).resolve().parents[2]
PROTO_ROOT = ROOT / "protos"
PROTO_FILES = sorted(PROTO_ROOT.rglob("*.proto"))
GENERATED_PACKAGE = "tradekernel_sdk.proto.tradekernel.v1"
SCOPES = ("read", "trade", "admin")

M = TypeVar("M", bound=Message)


# -- a small parser of the protos -----------------------------------------------


@dataclasses.dataclass
class Declaration:
    """One named element of a .proto file and the comment lines right above it."""

    kind: str  # message, enum, service, oneof, field, enum_value, rpc
    name: str
    path: Path
    line: int
    comment: list[str]
    parent: str = ""
    type: str = ""
    number: int = 0
    request: str = ""
    response: str = ""

    @property
    def where(self) -> str:
        """Return ``file:line`` for assertion messages."""
        return f"{self.path.relative_to(ROOT)}:{self.line}"


_BLOCK = re.compile(r"^(message|enum|service|oneof) (\w+) \{$")
_FIELD = re.compile(
    r"^(?:(?:repeated|optional) )?(?P<type>map<[\w.]+, [\w.]+>|[\w.]+) (?P<name>\w+) = "
    r"(?P<number>\d+);$"
)
_ENUM_VALUE = re.compile(r"^(?P<name>[A-Z][A-Z0-9_]*) = (?P<number>-?\d+);$")
_RPC = re.compile(
    r"^rpc (?P<name>\w+)\((?:stream )?(?P<request>[\w.]+)\) "
    r"returns \((?:stream )?(?P<response>[\w.]+)\);$"
)
_TOP_LEVEL = re.compile(r'^(syntax = "proto3"|package [\w.]+|import "[\w/.]+");$')


def parse(path: Path) -> tuple[str, list[Declaration]]:
    """Return the package of ``path`` and its declarations; fail on a line it cannot read."""
    package = ""
    declarations: list[Declaration] = []
    stack: list[Declaration] = []
    comment: list[str] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if line.startswith("//"):
            comment.append(line[2:].strip())
            continue
        above, comment = comment, []
        if not line or line.startswith(("reserved ", "option ")):
            continue
        parent = stack[-1] if stack else None
        if line == "}":
            assert stack, f"{path}:{number}: unbalanced brace"
            stack.pop()
            continue
        closes = line.startswith("message ") and line.endswith(" {}")
        if closes:
            line = line[:-1]  # an empty message opens and closes on one line
        if match := _BLOCK.match(line):
            declaration = Declaration(match[1], match[2], path, number, above)
            declaration.parent = parent.name if parent else ""
            declarations.append(declaration)
            if not closes:
                stack.append(declaration)
        elif parent is not None and parent.kind in ("message", "oneof") and _FIELD.match(line):
            match = _FIELD.match(line)
            assert match is not None
            declarations.append(
                Declaration(
                    "field",
                    match["name"],
                    path,
                    number,
                    above,
                    parent=parent.name,
                    type=match["type"],
                    number=int(match["number"]),
                )
            )
        elif parent is not None and parent.kind == "enum" and _ENUM_VALUE.match(line):
            match = _ENUM_VALUE.match(line)
            assert match is not None
            declarations.append(
                Declaration(
                    "enum_value",
                    match["name"],
                    path,
                    number,
                    above,
                    parent=parent.name,
                    number=int(match["number"]),
                )
            )
        elif parent is not None and parent.kind == "service" and _RPC.match(line):
            match = _RPC.match(line)
            assert match is not None
            declarations.append(
                Declaration(
                    "rpc",
                    match["name"],
                    path,
                    number,
                    above,
                    parent=parent.name,
                    request=match["request"],
                    response=match["response"],
                )
            )
        elif parent is None and _TOP_LEVEL.match(line):
            if line.startswith("package "):
                package = line.removeprefix("package ").removesuffix(";")
        else:
            pytest.fail(f"{path}:{number}: the style test cannot parse {raw!r}")
    assert not stack, f"{path}: unclosed {stack[-1].kind} {stack[-1].name}"
    return package, declarations


PARSED = {path: parse(path) for path in PROTO_FILES}
DECLARATIONS = [item for _, declarations in PARSED.values() for item in declarations]


def declarations(kind: str) -> list[Declaration]:
    """Return every declaration of ``kind`` in every proto file."""
    return [item for item in DECLARATIONS if item.kind == kind]


def upper_snake(name: str) -> str:
    """Return ``OrderSide`` as ``ORDER_SIDE``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


def rpc_scope(rpc: Declaration) -> str | None:
    """Return the scope an rpc's comment names (``Scope: `read```), or None."""
    found = re.findall(r"Scope: `(\w+)`", " ".join(rpc.comment))
    assert len(found) <= 1, f"{rpc.where}: {rpc.name} names several scopes"
    return found[0] if found else None


# -- generation ----------------------------------------------------------------


def test_generated_code_matches_the_protos() -> None:
    if importlib.util.find_spec("mypy_protobuf") is None:
        pytest.skip("mypy-protobuf is not installed: scripts/gen_protos.py cannot run")
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("proto", PROTO_FILES, ids=lambda path: path.name)
def test_every_generated_module_imports_from_the_installed_package(proto: Path) -> None:
    stem = proto.stem
    module = importlib.import_module(f"{GENERATED_PACKAGE}.{stem}_pb2")
    assert module.DESCRIPTOR.package == "tradekernel.v1"
    assert module.DESCRIPTOR.name == proto.relative_to(PROTO_ROOT).as_posix()
    for message in module.DESCRIPTOR.message_types_by_name:
        assert getattr(module, message).__module__ == module.__name__
    _, found = PARSED[proto]
    if any(item.kind == "service" for item in found):
        services = importlib.import_module(f"{GENERATED_PACKAGE}.{stem}_pb2_grpc")
        for service in (item.name for item in found if item.kind == "service"):
            assert hasattr(services, f"{service}Stub")
            assert hasattr(services, f"{service}Servicer")
            assert hasattr(services, f"add_{service}Servicer_to_server")
    else:
        assert importlib.util.find_spec(f"{GENERATED_PACKAGE}.{stem}_pb2_grpc") is None
    assert not any(name.startswith("tradekernel.") for name in sys.modules), (
        "a generated module imported protoc's absolute `tradekernel.v1` path"
    )


def test_order_service_stub_and_servicer_come_from_the_installed_package() -> None:
    assert orders_pb2_grpc.OrderServiceStub.__module__ == f"{GENERATED_PACKAGE}.orders_pb2_grpc"
    servicer = orders_pb2_grpc.OrderServiceServicer
    assert {"SubmitOrder", "CancelOrder", "StreamFills"} <= set(vars(servicer))


# -- style ---------------------------------------------------------------------


@pytest.mark.parametrize("proto", PROTO_FILES, ids=lambda path: path.name)
def test_package_matches_the_directory_and_ends_in_a_version(proto: Path) -> None:
    package, _ = PARSED[proto]
    relative = proto.relative_to(PROTO_ROOT)
    assert package.replace(".", "/") == relative.parent.as_posix()
    assert re.fullmatch(r"v\d+", package.rsplit(".", 1)[-1])
    assert re.fullmatch(r"[a-z][a-z0-9_]*\.proto", relative.name)
    assert proto.read_text(encoding="utf-8").startswith('syntax = "proto3";\n')


def test_every_element_is_commented() -> None:
    uncommented = [
        f"{item.where}: {item.kind} {item.name}"
        for item in DECLARATIONS
        if not any(line for line in item.comment)
    ]
    assert not uncommented, "\n".join(uncommented)


def test_services_end_in_service_and_rpcs_use_their_own_request_and_response() -> None:
    for service in declarations("service"):
        assert service.name.endswith("Service"), service.where
    requests: list[str] = []
    for rpc in declarations("rpc"):
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]*", rpc.name), rpc.where
        assert rpc.request == f"{rpc.name}Request", rpc.where
        assert rpc.response == f"{rpc.name}Response", rpc.where
        requests += [rpc.request, rpc.response]
    assert len(requests) == len(set(requests)), "an rpc shares its request or response"


def test_enum_zero_values_are_unspecified_and_values_carry_the_enum_prefix() -> None:
    for enum_declaration in declarations("enum"):
        prefix = upper_snake(enum_declaration.name)
        values = [
            item
            for item in declarations("enum_value")
            if item.parent == enum_declaration.name and item.path == enum_declaration.path
        ]
        assert values, enum_declaration.where
        assert values[0].number == 0, values[0].where
        assert values[0].name == f"{prefix}_UNSPECIFIED", values[0].where
        for value in values:
            assert value.name.startswith(f"{prefix}_"), value.where


def test_names_follow_their_case() -> None:
    for item in declarations("message") + declarations("enum"):
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]*", item.name), item.where
    for item in declarations("field") + declarations("oneof"):
        assert re.fullmatch(r"[a-z][a-z0-9_]*", item.name), item.where


def test_no_field_is_a_float_or_a_double() -> None:
    floating = [
        f"{item.where}: {item.parent}.{item.name} is {item.type}"
        for item in declarations("field")
        if re.search(r"\b(float|double)\b", item.type)
    ]
    assert not floating, "\n".join(floating)


def test_every_rpc_names_its_scope_except_those_components_implement() -> None:
    for rpc in declarations("rpc"):
        scope = rpc_scope(rpc)
        if rpc.parent == "ComponentService":
            assert scope is None, rpc.where
        else:
            assert scope in SCOPES, f"{rpc.where}: {rpc.name} names no scope"


def test_the_docs_table_lists_every_rpc_with_its_scope() -> None:
    documented: set[tuple[str, str, str | None]] = set()
    table = re.compile(r"^\| `(\w+Service)` \| `(\w+)` \| [^|]+ \| ([^|]+) \|")
    for line in (ROOT / "docs" / "api-protos.md").read_text(encoding="utf-8").splitlines():
        if match := table.match(line):
            scope = re.search(r"`(read|trade|admin)`", match[3])
            documented.add((match[1], match[2], scope[1] if scope else None))
    declared = {(rpc.parent, rpc.name, rpc_scope(rpc)) for rpc in declarations("rpc")}
    assert documented == declared


def test_the_required_services_and_rpcs_exist() -> None:
    rpcs = {(rpc.parent, rpc.name) for rpc in declarations("rpc")}
    required = {
        "MarketDataService": {
            "StreamBooks",
            "StreamQuotes",
            "StreamTrades",
            "GetBookSnapshot",
            "ListInstruments",
        },
        "OrderService": {
            "SubmitOrder",
            "CancelOrder",
            "CancelAllOrders",
            "ListOrders",
            "StreamOrderEvents",
            "StreamFills",
        },
        "PortfolioService": {"GetPositions", "GetPnl", "StreamPortfolio"},
        "RiskService": {"GetRiskState", "Halt", "Resume", "GetLimits", "UpdateLimits"},
        "PluginService": {"ListPlugins", "EnablePlugin", "DisablePlugin"},
        "ModelService": {
            "ListModels",
            "LoadModel",
            "PromoteModel",
            "ShadowModel",
            "CanaryModel",
            "RollbackModel",
        },
        "ComponentService": {"Describe", "Session"},
        "KernelService": {"GetVersion", "GetStatus", "GetConfigSummary"},
    }
    for service, names in required.items():
        assert {(service, name) for name in names} <= rpcs, service


# -- the protos mirror the SDK and the kernel ------------------------------------


MIRRORED_ENUMS = [
    (types.BookState, market_data_pb2.BookState, {}),
    (types.AggressorSide, market_data_pb2.AggressorSide, {"UNKNOWN": "UNSPECIFIED"}),
    (orders.OrderSide, orders_pb2.OrderSide, {}),
    (orders.OrderType, orders_pb2.OrderType, {}),
    (orders.TimeInForce, orders_pb2.TimeInForce, {}),
    (orders.OrderStatus, orders_pb2.OrderStatus, {}),
    (orders.Liquidity, orders_pb2.Liquidity, {}),
    (TradingState, risk_pb2.TradingState, {}),
    (DenialReason, risk_pb2.DenialReason, {}),
    (PluginStatus, plugins_pb2.PluginStatus, {}),
]


@pytest.mark.parametrize(
    ("python_enum", "proto_enum", "renamed"),
    MIRRORED_ENUMS,
    ids=[python.__name__ for python, _, _ in MIRRORED_ENUMS],
)
def test_proto_enums_have_exactly_the_python_members(
    python_enum: type[enum.Enum], proto_enum: object, renamed: dict[str, str]
) -> None:
    prefix = upper_snake(python_enum.__name__)
    expected = {f"{prefix}_{renamed.get(member.name, member.name)}" for member in python_enum}
    expected.add(f"{prefix}_UNSPECIFIED")
    assert set(proto_enum.keys()) == expected  # type: ignore[attr-defined]


MIRRORED_STRUCTS = [
    (types.Instrument, types_pb2.Instrument),
    (types.BookDelta, market_data_pb2.BookDelta),
    (types.BookSnapshot, market_data_pb2.BookSnapshot),
    (types.Quote, market_data_pb2.Quote),
    (types.Trade, market_data_pb2.Trade),
    (types.Bar, market_data_pb2.Bar),
    (types.BookStatus, market_data_pb2.BookStatus),
    (orders.OrderRequest, orders_pb2.OrderRequest),
    (orders.CancelRequest, orders_pb2.CancelRequest),
    (orders.OrderAccepted, orders_pb2.OrderAccepted),
    (orders.OrderRejected, orders_pb2.OrderRejected),
    (orders.OrderFilled, orders_pb2.OrderFilled),
    (orders.OrderCanceled, orders_pb2.OrderCanceled),
    (orders.OrderExpired, orders_pb2.OrderExpired),
    (orders.CancelRejected, orders_pb2.CancelRejected),
    (orders.OrderUpdate, orders_pb2.OrderUpdate),
    (strategy.OrderIntent, orders_pb2.OrderIntent),
]


@pytest.mark.parametrize(
    ("python_type", "proto_type"),
    MIRRORED_STRUCTS,
    ids=[python.__name__ for python, _ in MIRRORED_STRUCTS],
)
def test_proto_messages_have_every_sdk_field_in_order(
    python_type: type[msgspec.Struct], proto_type: type[Message]
) -> None:
    proto_fields = [field.name for field in proto_type.DESCRIPTOR.fields]
    assert proto_fields == list(python_type.__struct_fields__)


def test_plugin_info_mirrors_the_plugin_host() -> None:
    proto_fields = [field.name for field in plugins_pb2.PluginInfo.DESCRIPTOR.fields]
    assert proto_fields == [field.name for field in dataclasses.fields(PluginInfo)]


# -- round trips ---------------------------------------------------------------


def decimal(text: str, precision: int) -> types_pb2.Decimal:
    """Return the wire form of a decimal string at ``precision``."""
    return types_pb2.Decimal(units=to_fixed(text, precision), precision=precision)


def text(value: types_pb2.Decimal) -> str:
    """Return a wire decimal as its canonical string."""
    return from_fixed(value.units, value.precision)


def roundtrip(message: M) -> M:
    """Serialize ``message`` and parse it back into a new message of its type."""
    parsed = type(message)()
    parsed.ParseFromString(message.SerializeToString())
    return parsed


def test_a_decimal_beyond_53_bits_survives_the_wire_exactly() -> None:
    size = decimal("123456789.12345679", 8)
    assert size.units > 2**53, "the example must not fit a double's mantissa"
    assert int(float(size.units)) != size.units, "a double would have rounded it"
    assert text(roundtrip(size)) == "123456789.12345679"
    for units in (2**63 - 1, -(2**63), -1):
        extreme = types_pb2.Decimal(units=units, precision=8)
        assert roundtrip(extreme).units == units


def test_a_decimal_stays_exact_in_json_where_numbers_are_doubles() -> None:
    size = decimal("123456789.12345679", 8)
    encoded = json_format.MessageToJson(size)
    assert '"12345678912345679"' in encoded, "64-bit integers are JSON strings"
    assert text(json_format.Parse(encoded, types_pb2.Decimal())) == "123456789.12345679"


def test_an_amount_holds_a_notional_beyond_64_bits() -> None:
    price, size = to_fixed("61737.63", 8), to_fixed("150000.5", 8)
    notional = from_fixed(price * size, 16)
    assert price * size > 2**63, "the example must overflow a 64-bit integer"
    amount = roundtrip(types_pb2.Amount(value=notional))
    assert PyDecimal(amount.value) == PyDecimal("61737.63") * PyDecimal("150000.5")


def test_a_book_snapshot_round_trips_with_its_levels() -> None:
    snapshot = market_data_pb2.BookSnapshot(
        venue="binance",
        symbol="BTCUSDT",
        bids=[market_data_pb2.Level(price=decimal("61737.63", 8), size=decimal("0.5", 8))],
        asks=[market_data_pb2.Level(price=decimal("61737.64", 8), size=decimal("1.25", 8))],
        sequence=73_648_573_021,
        ts_event=1_717_000_000_000_000_000,
        ts_recv=1_717_000_000_000_500_000,
    )
    parsed = roundtrip(snapshot)
    assert parsed == snapshot
    assert text(parsed.bids[0].price) == "61737.63000000"
    assert text(parsed.asks[0].size) == "1.25000000"


def test_a_submit_order_request_round_trips_with_its_idempotency_key() -> None:
    request = orders_pb2.SubmitOrderRequest(
        order=orders_pb2.OrderRequest(
            client_order_id="api-20240601-0001",
            venue="binance",
            symbol="BTCUSDT",
            side=orders_pb2.ORDER_SIDE_BUY,
            order_type=orders_pb2.ORDER_TYPE_LIMIT,
            quantity=decimal("0.001", 8),
            price=decimal("61000", 8),
            time_in_force=orders_pb2.TIME_IN_FORCE_POST_ONLY,
        )
    )
    parsed = roundtrip(request)
    assert parsed.order.client_order_id == "api-20240601-0001"
    assert parsed.order.HasField("price")
    market = orders_pb2.OrderRequest(order_type=orders_pb2.ORDER_TYPE_MARKET)
    assert not roundtrip(market).HasField("price"), "an unset price is absent, not zero"


def test_session_messages_carry_one_kind_each() -> None:
    delta = market_data_pb2.BookDelta(
        venue="binance",
        symbol="BTCUSDT",
        bids=[market_data_pb2.Level(price=decimal("61737.63", 8), size=decimal("0", 8))],
        first_sequence=10,
        sequence=12,
    )
    inbound = roundtrip(components_pb2.SessionRequest(sequence=7, clock=5, book_delta=delta))
    assert inbound.WhichOneof("message") == "book_delta"
    assert inbound.book_delta == delta
    intent = orders_pb2.OrderIntent(
        venue="binance",
        symbol="BTCUSDT",
        side=orders_pb2.ORDER_SIDE_SELL,
        order_type=orders_pb2.ORDER_TYPE_MARKET,
        quantity=decimal("0.002", 8),
        tag="exit",
    )
    outbound = roundtrip(components_pb2.SessionResponse(request_id="r-1", order_intent=intent))
    assert outbound.WhichOneof("message") == "order_intent"
    assert outbound.order_intent.tag == "exit"
