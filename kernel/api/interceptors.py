"""Server interceptors, one per concern: authentication, per-RPC metrics, logging.

The order in the server is logging → metrics → authentication, so a call
refused for its credentials is still counted and logged with its code.
Per-call state (the caller's scopes) lives in :data:`CALLER_SCOPES`, a
context variable set only while the servicer runs. No metadata value (a
token above all) is ever logged.
"""

from __future__ import annotations

import asyncio
import contextvars
import hmac
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeAlias

import grpc
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

from kernel.api.scopes import required_scope
from kernel.metrics import LatencyHistogram

__all__ = [
    "CALLER_SCOPES",
    "ApiMetrics",
    "AuthInterceptor",
    "LoggingInterceptor",
    "MalformedRequestInterceptor",
    "MetricsInterceptor",
]

log = logging.getLogger(__name__)

CALLER_SCOPES: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "tradekernel_api_caller_scopes", default=frozenset()
)
"""Scopes of the authenticated caller of the current call."""

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Continuation: TypeAlias = Callable[[grpc.HandlerCallDetails], Awaitable["Handler | None"]]
# Wraps one call of a servicer: (method, run) -> result, where run() runs the servicer.
_UnaryBehavior: TypeAlias = Callable[[Any, "grpc.aio.ServicerContext[Any, Any]"], Awaitable[Any]]
_StreamBehavior: TypeAlias = Callable[
    [Any, "grpc.aio.ServicerContext[Any, Any]"], AsyncIterator[Any]
]


def _status(context: grpc.aio.ServicerContext[Any, Any], error: BaseException | None) -> str:
    """Return the name of the status code a call ended with."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):
        for member in grpc.StatusCode:
            if member.value[0] == code:
                return member.name
    if error is None:
        return "OK"
    if isinstance(error, grpc.aio.AbortError):
        return "UNKNOWN"
    if isinstance(error, GeneratorExit | asyncio.CancelledError):
        return "CANCELLED"
    return "UNKNOWN"


async def _relay(result: Any) -> AsyncIterator[Any]:
    """Yield what a streaming behaviour yields; await one that writes with ``context.write``."""
    if inspect.isawaitable(result):
        await result
        return
    async for item in result:
        yield item


Observer = Callable[[str, str, int], None]
"""Called once per finished call with (method, status code name, duration in ns)."""


def _observe(handler: Handler, method: str, observer: Observer) -> Handler:
    """Return ``handler`` with each call reported to ``observer`` when it ends."""
    if handler.unary_unary is not None:
        behavior: _UnaryBehavior = handler.unary_unary  # type: ignore[assignment]  # aio handler

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter_ns()
            error: BaseException | None = None
            try:
                return await behavior(request, context)
            except BaseException as raised:
                error = raised
                raise
            finally:
                observer(method, _status(context, error), time.perf_counter_ns() - started)

        return grpc.unary_unary_rpc_method_handler(
            unary_unary,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream is not None:
        stream: _StreamBehavior = handler.unary_stream  # type: ignore[assignment]  # aio handler

        async def unary_stream(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            started = time.perf_counter_ns()
            error: BaseException | None = None
            try:
                async for item in _relay(stream(request, context)):
                    yield item
            except BaseException as raised:
                error = raised
                raise
            finally:
                observer(method, _status(context, error), time.perf_counter_ns() - started)

        return grpc.unary_stream_rpc_method_handler(
            unary_stream,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return handler  # client and bidirectional streams: not served by the kernel's API yet


def _with_scopes(handler: Handler, scopes: frozenset[str]) -> Handler:
    """Return ``handler`` running with :data:`CALLER_SCOPES` set to ``scopes``."""
    if handler.unary_unary is not None:
        behavior: _UnaryBehavior = handler.unary_unary  # type: ignore[assignment]  # aio handler

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            token = CALLER_SCOPES.set(scopes)
            try:
                return await behavior(request, context)
            finally:
                CALLER_SCOPES.reset(token)

        return grpc.unary_unary_rpc_method_handler(
            unary_unary,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream is not None:
        stream: _StreamBehavior = handler.unary_stream  # type: ignore[assignment]  # aio handler

        async def unary_stream(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            CALLER_SCOPES.set(scopes)  # the generator runs in the call's own task context
            async for item in _relay(stream(request, context)):
                yield item

        return grpc.unary_stream_rpc_method_handler(
            unary_stream,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return handler


def _abort_handler(code: grpc.StatusCode, details: str) -> Handler:
    """Return a handler that fails every call with ``code`` (built once, at start)."""

    async def abort(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(code, details)

    return grpc.unary_unary_rpc_method_handler(abort)


def _abort_stream_handler(code: grpc.StatusCode, details: str) -> Handler:
    """Return a server-streaming handler that fails every call with ``code``."""

    async def abort(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        await context.abort(code, details)
        yield None  # pragma: no cover (unreachable: abort raises)

    return grpc.unary_stream_rpc_method_handler(abort)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Authenticate the bearer token in ``authorization`` and check the method's scope.

    A missing or unknown token fails with UNAUTHENTICATED, a token without the
    scope the method needs with PERMISSION_DENIED. Tokens are compared in
    constant time and never logged.
    """

    def __init__(self, tokens: Mapping[str, frozenset[str]]) -> None:
        self._tokens = {token.encode(): frozenset(scopes) for token, scopes in tokens.items()}
        self._unauthenticated = (
            _abort_handler(grpc.StatusCode.UNAUTHENTICATED, "missing or unknown bearer token"),
            _abort_stream_handler(
                grpc.StatusCode.UNAUTHENTICATED, "missing or unknown bearer token"
            ),
        )

    def _scopes(self, metadata: Any) -> frozenset[str] | None:
        """Return the scopes of the call's bearer token, or None when it has none we know."""
        for key, value in metadata or ():
            if key != "authorization":
                continue
            text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
            scheme, _, credential = text.partition(" ")
            if scheme.lower() != "bearer" or not credential:
                return None
            presented = credential.strip().encode("latin-1", "replace")
            found: frozenset[str] | None = None
            for token, scopes in self._tokens.items():
                if hmac.compare_digest(token, presented):
                    found = scopes
            return found
        return None

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        """Return the method's handler, or one that refuses the call."""
        method = handler_call_details.method
        needed = required_scope(method)
        if needed is None:
            return await continuation(handler_call_details)
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        streaming = handler.unary_stream is not None
        scopes = self._scopes(handler_call_details.invocation_metadata)
        if scopes is None:
            return self._unauthenticated[1 if streaming else 0]
        if needed not in scopes:
            details = f"{method} needs the {needed!r} scope"
            if streaming:
                return _abort_stream_handler(grpc.StatusCode.PERMISSION_DENIED, details)
            return _abort_handler(grpc.StatusCode.PERMISSION_DENIED, details)
        return _with_scopes(handler, scopes)


class ApiMetrics:
    """Calls by method and status code, and latency by method: plain counters to export."""

    def __init__(self) -> None:
        self.calls: dict[tuple[str, str], int] = {}
        """(method, status code name) → calls."""
        self.latency: dict[str, LatencyHistogram] = {}
        """Method → histogram of call durations in nanoseconds."""

    def observe(self, method: str, code: str, duration_ns: int) -> None:
        """Count one finished call."""
        key = (method, code)
        self.calls[key] = self.calls.get(key, 0) + 1
        histogram = self.latency.get(method)
        if histogram is None:
            histogram = self.latency[method] = LatencyHistogram()
        histogram.observe(duration_ns)

    def count(self, method: str, code: str) -> int:
        """Return how many calls of ``method`` ended with ``code``."""
        return self.calls.get((method, code), 0)

    def families(self) -> list[Any]:
        """Return the Prometheus families of the counters (read at scrape time)."""
        calls = CounterMetricFamily(
            "tradekernel_api_calls",
            "gRPC calls by method and status code",
            labels=["method", "code"],
        )
        for (method, code), count in sorted(self.calls.items()):
            calls.add_metric([method, code], count)
        latency = HistogramMetricFamily(
            "tradekernel_api_call_seconds", "gRPC call duration by method", labels=["method"]
        )
        for method, histogram in sorted(self.latency.items()):
            latency.add_metric([method], histogram.cumulative_buckets(), histogram.total_ns / 1e9)
        return [calls, latency]


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Count every call by method and status code and record its latency."""

    def __init__(self, metrics: ApiMetrics) -> None:
        self.metrics = metrics

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        """Return the method's handler, observed."""
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return _observe(handler, handler_call_details.method, self.metrics.observe)


class LoggingInterceptor(grpc.aio.ServerInterceptor):
    """Log each finished call: method, status code and duration; never metadata."""

    def __init__(self, logger: logging.Logger = log) -> None:
        self.logger = logger

    def _log(self, method: str, code: str, duration_ns: int) -> None:
        level = logging.INFO if code in {"OK", "CANCELLED"} else logging.WARNING
        self.logger.log(level, "rpc %s %s %.3f ms", method, code, duration_ns / 1e6)

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        """Return the method's handler, logged."""
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return _observe(handler, handler_call_details.method, self._log)


class _Malformed:
    """A request payload that did not parse; the call fails with INVALID_ARGUMENT."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


class MalformedRequestInterceptor(grpc.aio.ServerInterceptor):
    """Fail a request whose payload does not parse with INVALID_ARGUMENT, not UNKNOWN."""

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        """Return the method's handler with a deserializer that never raises."""
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        parse = handler.request_deserializer

        def deserialize(payload: bytes) -> Any:
            try:
                return parse(payload)
            except Exception as error:
                return _Malformed(error)

        async def refuse(request: _Malformed, context: grpc.aio.ServicerContext[Any, Any]) -> None:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"request: not a valid message ({type(request.error).__name__})",
            )

        if handler.unary_unary is not None:
            behavior: _UnaryBehavior = handler.unary_unary  # type: ignore[assignment]  # aio handler

            async def unary_unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                if isinstance(request, _Malformed):
                    await refuse(request, context)
                return await behavior(request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary_unary,
                request_deserializer=deserialize,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            stream: _StreamBehavior = handler.unary_stream  # type: ignore[assignment]  # aio handler

            async def unary_stream(
                request: Any, context: grpc.aio.ServicerContext[Any, Any]
            ) -> AsyncIterator[Any]:
                if isinstance(request, _Malformed):
                    await refuse(request, context)
                async for item in _relay(stream(request, context)):
                    yield item

            return grpc.unary_stream_rpc_method_handler(
                unary_stream,
                request_deserializer=deserialize,
                response_serializer=handler.response_serializer,
            )
        return handler
