"""Who is calling: bearer token, the login cookie, or (live feed only) ``?access_token=``."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from console.context import COOKIE, CSRF_HEADER, CSRF_VALUE, Console
from console.http import Operation, ProblemError
from console.tokens import Principal, TokenRecord, principal_of


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(401, "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


def identify(
    console: Console, request: web.Request, op: Operation | None = None
) -> tuple[TokenRecord, bool] | None:
    """The caller's token record and whether it came as the cookie; None without any token.
    A malformed ``Authorization`` header or an unknown token is a 401."""
    token, by_cookie = None, False
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise _unauthorized("use 'Authorization: Bearer <token>'")
        token = value.strip()
    elif op is not None and op.token_in_query and "access_token" in request.query:
        token = request.query["access_token"]
    elif COOKIE in request.cookies:
        token, by_cookie = request.cookies[COOKIE], True
    if not token:
        return None
    record = console.tokens.check(token)
    if record is None:
        raise _unauthorized("unknown token")
    return record, by_cookie


def principal(console: Console, record: TokenRecord) -> Principal:
    def office_estates(office_id: str) -> list[str]:
        office = console.index.street_office(office_id)
        return [] if office is None else [e.id for e in office.estates]

    return principal_of(record, office_estates)


def make_authenticate(console: Console) -> Callable[[web.Request, Operation], Principal | None]:
    """Every operation's check: 401 without a valid token; 403 for a cookie-authenticated
    change without the CSRF header."""

    def authenticate(request: web.Request, op: Operation) -> Principal | None:
        if op.operation_id == "metrics" and console.options.public_metrics:
            return None
        found = identify(console, request, op)
        if found is None:
            raise _unauthorized("this call needs a token")
        record, by_cookie = found
        if by_cookie and op.method != "GET" and request.headers.get(CSRF_HEADER) != CSRF_VALUE:
            raise ProblemError(
                403, "Forbidden", f"cookie-authenticated changes need {CSRF_HEADER}: {CSRF_VALUE}"
            )
        return principal(console, record)

    return authenticate
