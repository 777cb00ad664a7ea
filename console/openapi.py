"""The OpenAPI 3.1 document, generated from the declared operations and their models."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from console.http import JSON, PROBLEM_JSON, Operation, Problem

REF: Final = "#/components/schemas/{model}"
#: Statuses every authenticated operation may answer, with a problem body.
AUTH_ERRORS: Final = {401: "No token, or an unknown one", 403: "Not allowed for this token"}
ERROR_TEXT: Final = {
    400: "Invalid input",
    404: "Not found (or outside the caller's scope)",
    409: "Refused by the alarm state machine (the reason is in detail)",
    413: "Body too large",
    503: "Not ready",
}


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": REF.format(model="Problem")}}},
    }


def _ref(model: type[BaseModel] | str) -> dict[str, str]:
    name = model if isinstance(model, str) else model.__name__
    return {"$ref": REF.format(model=name)}


def _parameters(model: type[BaseModel], where: str, schemas: dict[str, Any]) -> list[Any]:
    schema = schemas[model.__name__]
    required = set(schema.get("required", ()))
    return [
        {
            "name": name,
            "in": where,
            "required": where == "path" or name in required,
            "schema": _not_null(prop),
            **({"description": prop["description"]} if "description" in prop else {}),
        }
        for name, prop in schema.get("properties", {}).items()
    ]


def _not_null(prop: dict[str, Any]) -> dict[str, Any]:
    """A parameter's schema without its ``null`` branch (a query string cannot be null)."""
    schema = {k: v for k, v in prop.items() if k not in ("title", "description")}
    branches = [b for b in schema.get("anyOf", ()) if b != {"type": "null"}]
    if "anyOf" in schema and len(branches) == 1:
        del schema["anyOf"]
        schema |= branches[0]
    return schema


def _operation(op: Operation, schemas: dict[str, Any]) -> dict[str, Any]:
    parameters: list[Any] = []
    if op.path_model is not None:
        parameters += _parameters(op.path_model, "path", schemas)
    if op.query is not None:
        parameters += _parameters(op.query, "query", schemas)
    responses: dict[str, Any] = {}
    if op.response is not None:
        responses[str(op.status)] = {
            "description": "OK",
            "content": {JSON: {"schema": _ref(op.response)}},
        }
    elif op.content_type is not None:
        responses[str(op.status)] = {
            "description": "OK",
            "content": {op.content_type.split(";")[0]: {"schema": {"type": "string"}}},
        }
    else:
        responses[str(op.status)] = {"description": "Done"}
    for status, model in op.extra_responses.items():
        responses[str(status)] = {
            "description": model,
            "content": {JSON: {"schema": _ref(model)}},
        }
    errors: dict[int, str] = {}
    if op.path_model or op.query or op.body or op.method != "GET":
        errors[400] = ERROR_TEXT[400]
    if op.auth:
        errors |= AUTH_ERRORS
    if op.path_model is not None:
        errors[404] = ERROR_TEXT[404]
    if op.body is not None:
        errors[413] = ERROR_TEXT[413]
    for status in op.errors:
        errors[status] = ERROR_TEXT[status]
    if op.path.endswith("/session") and op.method == "POST":
        errors[401] = "Unknown token"
    for status, text in sorted(errors.items()):
        responses[str(status)] = _problem(text)
    out: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        "responses": responses,
    }
    if op.description:
        out["description"] = op.description
    if parameters:
        out["parameters"] = parameters
    if op.body is not None:
        out["requestBody"] = {
            "required": True,
            "content": {JSON: {"schema": _ref(op.body)}},
        }
    if op.auth:
        security: list[dict[str, list[str]]] = [{"bearer": []}, {"cookie": []}]
        if op.token_in_query:
            security.append({"query": []})
        out["security"] = security
    else:
        out["security"] = []
    return out


def document(
    operations: Iterable[Operation], extra_models: Iterable[type[BaseModel]] = ()
) -> dict[str, Any]:
    ops = list(operations)
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(Problem, "serialization")]
    for op in ops:
        models += [(m, "validation") for m in (op.path_model, op.query, op.body) if m]
        if op.response is not None:
            models.append((op.response, "serialization"))
    models += [(m, "serialization") for m in extra_models]
    _, top = models_json_schema(list(dict.fromkeys(models)), ref_template=REF)
    schemas: dict[str, Any] = top.get("$defs", {})
    paths: dict[str, dict[str, Any]] = {}
    for op in ops:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, schemas)
    for op in ops:  # parameter models are inlined: not components of their own
        for m in (op.path_model, op.query):
            if m is not None:
                schemas.pop(m.__name__, None)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Estate monitor control-room API",
            "version": "1.0.0",
            "description": "Alerts, device health, readings and events of the estates in the "
            "caller's scope. Errors are RFC 9457 problem details. See docs/api.md.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "estate_token"},
                "query": {"type": "apiKey", "in": "query", "name": "access_token"},
            },
        },
    }
