"""The error servicers raise to fail a call with a status code and a message naming the field."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc

__all__ = ["ApiError", "invalid", "unary"]

_S = TypeVar("_S")
_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")


class ApiError(Exception):
    """Fail the current call with ``code`` and ``message``."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(field: str, problem: str) -> ApiError:
    """Return an INVALID_ARGUMENT error naming ``field``."""
    return ApiError(grpc.StatusCode.INVALID_ARGUMENT, f"{field}: {problem}")


def unary(
    method: Callable[[_S, _Req, grpc.aio.ServicerContext[_Req, _Resp]], Awaitable[_Resp]],
) -> Callable[[_S, _Req, grpc.aio.ServicerContext[_Req, _Resp]], Awaitable[_Resp]]:
    """Turn an :class:`ApiError` raised by a unary servicer method into the call's status."""

    @functools.wraps(method)
    async def wrapper(
        self: _S, request: _Req, context: grpc.aio.ServicerContext[_Req, _Resp]
    ) -> _Resp:
        try:
            return await method(self, request, context)
        except ApiError as error:
            await context.abort(error.code, error.message)

    return wrapper
