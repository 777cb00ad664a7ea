"""The small framework under the API: declared operations, problem+json, validation.

Every operation is declared once (:class:`Operation`): method, path, the pydantic
models of its path parameters, query, body and response, and the statuses it can
answer. The same declaration routes the request, validates its input and writes the
OpenAPI document (:mod:`console.openapi`), so the document cannot drift from the code.
Errors are RFC 9457 problem details (``application/problem+json``).
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from console.tokens import Principal

log = logging.getLogger("console")

PROBLEM_JSON: Final = "application/problem+json"
JSON: Final = "application/json"
#: Largest request body accepted (operator comments are short).
MAX_BODY: Final = 64 * 1024

M = TypeVar("M", bound=BaseModel)


class InputModel(BaseModel):
    """Base of every request model: unknown fields are refused, nothing is coerced oddly."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class OutputModel(BaseModel):
    model_config = ConfigDict(frozen=True)


class Problem(OutputModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    #: Validation errors: where (``query.limit``, ``body.comment``) and what.
    errors: list[dict[str, JsonValue]] | None = None
    #: For refused operator commands: the id of the command record in the log.
    command_id: str | None = None


class ProblemError(Exception):
    """Raised by handlers; the middleware turns it into a problem+json response."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        type_: str | None = None,
        errors: list[dict[str, JsonValue]] | None = None,
        command_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.problem = Problem(
            type=type_ or f"/api/v1/problems/{title.lower().replace(' ', '-')}",
            title=title,
            status=status,
            detail=detail,
            errors=errors,
            command_id=command_id,
        )
        self.headers = dict(headers or {})


def problem_response(
    problem: Problem, instance: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    body = problem.model_copy(update={"instance": instance}).model_dump(
        mode="json", exclude_none=True
    )
    return web.Response(
        body=orjson.dumps(body),
        status=problem.status,
        content_type=PROBLEM_JSON,
        headers=headers,
    )


def not_found(what: str) -> ProblemError:
    return ProblemError(404, "Not Found", f"no {what} here (or not in your scope)")


def json_response(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(
        body=model.__pydantic_serializer__.to_json(model),
        status=status,
        content_type=JSON,
    )


# --- validation ----------------------------------------------------------------------------


def _errors(exc: ValidationError, where: str) -> list[dict[str, JsonValue]]:
    return [
        {
            "loc": ".".join([where, *(str(p) for p in e["loc"])]),
            "msg": e["msg"],
            "type": e["type"],
        }
        for e in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


def validate(model: type[M], data: Any, where: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ProblemError(
            400,
            "Invalid Input",
            f"the request's {where} is not valid",
            type_="/api/v1/problems/invalid-input",
            errors=_errors(exc, where),
        ) from None


def query_dict(request: web.Request) -> dict[str, str]:
    data: dict[str, str] = {}
    for name in request.query:
        values = request.query.getall(name)
        if len(values) > 1:
            raise ProblemError(400, "Invalid Input", f"query parameter {name!r} given twice")
        data[name] = values[0]
    return data


async def read_body(request: web.Request, model: type[M]) -> M:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ProblemError(413, "Payload Too Large", f"bodies are limited to {MAX_BODY} bytes")
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise ProblemError(413, "Payload Too Large", f"bodies are limited to {MAX_BODY} bytes")
    if not raw.strip():
        data: Any = {}
    else:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ProblemError(400, "Invalid Input", f"the body is not JSON: {exc}") from None
    return validate(model, data, "body")


# --- cursors -------------------------------------------------------------------------------


def encode_cursor(parts: Sequence[str | int]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(parts))).decode().rstrip("=")


def decode_cursor(cursor: str, types: Sequence[type]) -> list[Any]:
    """The parts of a cursor made by :func:`encode_cursor`; 400 when it is not one."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = orjson.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeEncodeError):
        parts = None
    if (
        not isinstance(parts, list)
        or len(parts) != len(types)
        or not all(type(p) is t for p, t in zip(parts, types, strict=True))
    ):
        raise ProblemError(400, "Invalid Input", "cursor is not one this API made")
    return parts


def next_link(request: web.Request, cursor: str | None) -> str | None:
    if cursor is None:
        return None
    return str(request.rel_url.update_query(cursor=cursor))


class Page(OutputModel):
    """Base of paged lists: ``next`` is the URL of the following page (absent at the end)."""

    next: str | None = Field(default=None, description="URL of the next page; null at the end")


# --- operations ----------------------------------------------------------------------------


@dataclass(slots=True)
class Call:
    """What a handler gets: the validated input and the caller."""

    request: web.Request
    principal: Principal | None
    path: BaseModel | None
    query: BaseModel | None
    body: BaseModel | None

    def path_as(self, model: type[M]) -> M:
        assert isinstance(self.path, model)
        return self.path

    def query_as(self, model: type[M]) -> M:
        assert isinstance(self.query, model)
        return self.query

    def body_as(self, model: type[M]) -> M:
        assert isinstance(self.body, model)
        return self.body

    @property
    def who(self) -> Principal:
        assert self.principal is not None
        return self.principal


Handler = Callable[[Call], Awaitable[web.StreamResponse]]
Authenticate = Callable[[web.Request, "Operation"], Principal | None]


@dataclass(slots=True)
class Operation:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    path_model: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    #: Other statuses it answers (with a problem body), beyond the common ones.
    errors: tuple[int, ...] = ()
    auth: bool = True
    #: Content type of a non-JSON success (metrics text, event stream, HTML).
    content_type: str | None = None
    description: str = ""
    extra_responses: dict[int, str] = field(default_factory=dict)
    #: Whether the token may come as ``?access_token=`` (EventSource cannot set headers).
    token_in_query: bool = False

    @property
    def operation_id(self) -> str:
        return self.handler.__name__.strip("_")


class Api:
    """The declared operations; :meth:`routes` makes the aiohttp routes."""

    def __init__(self) -> None:
        self.operations: list[Operation] = []

    def add(self, operation: Operation) -> None:
        self.operations.append(operation)

    def routes(self, authenticate: Authenticate) -> list[web.RouteDef]:
        return [
            web.route(op.method, op.path, _endpoint(op, authenticate)) for op in self.operations
        ]


def _endpoint(op: Operation, authenticate: Authenticate) -> Callable[..., Any]:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        principal = authenticate(request, op) if op.auth else None
        path = validate(op.path_model, dict(request.match_info), "path") if op.path_model else None
        query = validate(op.query, query_dict(request), "query") if op.query else None
        if op.query is None and op.method != "GET" and request.query:
            raise ProblemError(400, "Invalid Input", "this operation takes no query parameters")
        body = await read_body(request, op.body) if op.body else None
        return await op.handler(Call(request, principal, path, query, body))

    endpoint.__name__ = op.operation_id
    return endpoint


@web.middleware
async def problems_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every error as problem+json: ours, aiohttp's (404, 405, 413), and the unexpected."""
    try:
        return await handler(request)
    except ProblemError as exc:
        return problem_response(exc.problem, request.path, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        problem = Problem(title=exc.reason, status=exc.status, detail=exc.text or None)
        return problem_response(problem, request.path, headers)
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.path)
        problem = Problem(title="Internal Server Error", status=500, detail="see the server log")
        return problem_response(problem, request.path)
