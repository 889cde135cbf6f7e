"""The REST JSON API under ``/api/v1``: every published catalog entity, searchable and paged.

Why a generic router: the entities, their fields and relationships come from one registry
(:data:`cryocurate.catalog.filters.ENTITIES`), so a column added to a model is filterable,
sortable and documented in ``/openapi.json`` without touching this file. Per entity::

    GET  /api/v1/<plural>?field=value&field__op=value&rel.field=value&order_by=-id&limit=50
    POST /api/v1/<plural>/query      {"where": {...}, "order_by": [...], "limit": 50, ...}
    GET  /api/v1/<plural>/<id>
    GET  /api/v1/schema              entities, fields and relationships (the client's codegen)

Lists answer ``{"items": [...], "total": N, "limit": L, "offset": O}``; errors answer one
envelope ``{"ok": false, "error": "...", "status": 400}``. ``include=rel`` (or ``rel.id``)
embeds related rows (or their ids), one query per relationship per page.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Literal

from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, create_model
from pydantic import Field as PField

from cryocurate.catalog import filters
from cryocurate.catalog.filters import ENTITIES, Entity, Search
from cryocurate.errors import CryocurateError, NotFoundError
from cryocurate.grading import access
from cryocurate.web.auth import current_user
from cryocurate.web.deps import portal_of

PREFIX = "/api/v1"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def error_response(message: str, status: int) -> JSONResponse:
    """The API's one error shape."""
    return JSONResponse({"ok": False, "error": message, "status": status}, status_code=status)


def status_for(err: CryocurateError) -> int:
    """The HTTP status of one of our errors (each class of the tree says its own)."""
    return err.http_status


class ErrorEnvelopeRoute(APIRoute):
    """Turns our errors into the envelope, for the routes of a JSON router (the pages keep
    their own error handling): views raise, and never build error responses themselves."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except CryocurateError as err:
                return error_response(str(err), status_for(err))

        return route


class _EnvelopeRoute(ErrorEnvelopeRoute):
    """The catalog API's routes also answer request-validation errors in the envelope (400)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as err:
                problems = [f"{_where(e['loc'])}: {e['msg']}" for e in err.errors()]
                return error_response("; ".join(problems), 400)

        return route


def _where(loc: Sequence[Any]) -> str:
    """``("query", "limit")`` → ``limit``; ``("body", 12)`` (a JSON syntax error) → ``body``."""
    names = [str(part) for part in loc[1:] if isinstance(part, str)]
    return ".".join(names) or str(loc[0])


router = APIRouter(prefix=PREFIX, route_class=_EnvelopeRoute)


# ----------------------------------------------------------------------------------------------
# Documentation models (responses are built as plain dicts and returned as they are).

_PY_TYPES: dict[str, Any] = {
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "date": dt.date,
    "datetime": dt.datetime,
    "json": dict[str, Any],
}


def _row_model(ent: Entity) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for f in ent.fields.values():
        kind: Any = Literal[f.choices] if f.kind == "enum" else _PY_TYPES[f.kind]  # type: ignore[valid-type]
        fields[f.name] = (kind | None if f.nullable else kind, None)
    return create_model(ent.name, __config__=ConfigDict(extra="allow"), **fields)


class QueryBody(BaseModel):
    """The JSON form of a search (``POST /api/v1/<plural>/query``)."""

    where: dict[str, Any] = PField(
        default_factory=dict,
        description='Filter spec, e.g. {"runs": {"annotations": {"object_name": '
        '{"_eq": "ribosome"}}}, "id": {"_gte": 10000}}',
    )
    order_by: list[str | dict[str, str]] | str | None = PField(
        None, description='["-id", "title"] or [{"id": "desc"}]'
    )
    limit: int = PField(DEFAULT_LIMIT, ge=0, le=MAX_LIMIT)
    offset: int = PField(0, ge=0)
    include: list[str] = PField(default_factory=list, description='["runs", "dataset.id"]')
    count: bool = PField(True, description="false: skip counting all matches (total is null)")


# ----------------------------------------------------------------------------------------------
# Handlers.


def _search(
    request: Request,
    ent: Entity,
    where: dict[str, Any],
    order_by: Any,
    limit: int,
    offset: int,
    include: list[str],
    count: bool = True,
) -> JSONResponse:
    guards = access.annotation_guards(current_user(request))
    search = Search.from_spec(ent, where, order_by, limit, offset, guards)
    includes = filters.parse_includes(ent, include)
    with portal_of(request).transaction() as session:
        items, total = search.fetch(session, count=count)
        filters.attach_related(session, items, includes, guards)
    return JSONResponse({"items": items, "total": total, "limit": limit, "offset": offset})


_FLAT_DOC = """Filters are query parameters: `field=value` (equals), `field__op=value` with op one
of `eq, neq, gt, gte, lt, lte, in, nin, like, ilike, contains, is_null` (`in`/`nin` take
comma-separated values or a JSON list; `like`/`ilike` take `%`/`_` wildcards, `contains` is a
case-insensitive substring), and `rel.field[__op]=value` through relationships
(e.g. `runs.annotations.object_name=ribosome`). All conditions are AND-ed; conditions on one
relationship path apply to the same related row. `order_by=-id,title`; `limit` (≤ 1000),
`offset`; `include=rel` embeds related rows, `include=rel.id` their ids."""


def _describe(ent: Entity) -> str:
    fields = ", ".join(f"`{f.name}` ({f.kind})" for f in ent.fields.values())
    links = ", ".join(f"`{k}` → {v.target}" for k, v in ent.links.items()) or "none"
    return f"{_FLAT_DOC}\n\n**Fields:** {fields}.\n\n**Relationships:** {links}."


def _add_routes(ent: Entity) -> None:
    row = _row_model(ent)
    page = create_model(
        f"{ent.name}Page", items=(list[row], ...), total=(int | None, ...), limit=(int, ...),  # type: ignore[valid-type]
        offset=(int, ...),
    )  # fmt: skip
    tag = [ent.plural]

    def list_rows(
        request: Request,
        limit: int = Query(DEFAULT_LIMIT, ge=0, le=MAX_LIMIT),
        offset: int = Query(0, ge=0),
        order_by: list[str] = Query([], description="e.g. -id,title"),
        include: list[str] = Query([], description="related rows (rel) or ids (rel.id)"),
        count: bool = Query(
            True, description="false skips counting all matches (total is null): deep pages"
        ),
    ) -> JSONResponse:
        where = filters.parse_params(request.query_params.multi_items())
        return _search(request, ent, where, order_by, limit, offset, include, count)

    def query_rows(request: Request, body: QueryBody = Body(...)) -> JSONResponse:
        return _search(
            request,
            ent,
            body.where,
            body.order_by,
            body.limit,
            body.offset,
            body.include,
            body.count,
        )

    def get_row(
        request: Request,
        ident: int,
        include: list[str] = Query([], description="related rows (rel) or ids (rel.id)"),
    ) -> JSONResponse:
        guards = access.annotation_guards(current_user(request))
        spec = {ent.primary_key: {"_eq": ident}}
        search = Search.from_spec(ent, spec, limit=1, guards=guards)
        includes = filters.parse_includes(ent, include)
        with portal_of(request).transaction() as session:
            items, _ = search.fetch(session, count=False)
            if not items:
                raise NotFoundError(f"no {ent.name} with {ent.primary_key} {ident}")
            filters.attach_related(session, items, includes, guards)
        return JSONResponse(items[0])

    router.add_api_route(
        f"/{ent.plural}", list_rows, methods=["GET"], response_model=page, tags=tag,
        summary=f"Search {ent.plural}", description=_describe(ent),
    )  # fmt: skip
    router.add_api_route(
        f"/{ent.plural}/query", query_rows, methods=["POST"], response_model=page, tags=tag,
        summary=f"Search {ent.plural} (JSON filter spec)",
        description="The JSON form: nested filters, `_and`/`_or`/`_not`. " + _describe(ent),
    )  # fmt: skip
    router.add_api_route(
        f"/{ent.plural}/{{ident}}", get_row, methods=["GET"], response_model=row, tags=tag,
        summary=f"One {ent.name} by {ent.primary_key}",
    )  # fmt: skip


@router.get("/schema", summary="Entities, fields and relationships", tags=["schema"])
def schema() -> dict[str, Any]:
    """What the API publishes; the Python client's models are generated from this."""
    return {
        "entities": [
            {
                "name": e.name,
                "plural": e.plural,
                "primary_key": e.primary_key,
                "fields": [
                    {"name": f.name, "kind": f.kind, "nullable": f.nullable}
                    | ({"choices": list(f.choices)} if f.choices else {})
                    for f in e.fields.values()
                ],
                "relationships": [
                    {
                        "name": k,
                        "target": ENTITIES[v.target].name,
                        "many": v.many,
                        "local": v.local,
                        "remote": v.remote,
                    }
                    for k, v in e.links.items()
                ],
            }
            for e in ENTITIES.values()
        ]
    }


for _entity in ENTITIES.values():
    _add_routes(_entity)
