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
embeds related rows (or their ids), one query per relationship per page. Views raise errors from
the tree; the web's error boundary (:mod:`cryocurate.web.errors`) answers them in the envelope.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, create_model
from pydantic import Field as PField

from cryocurate.catalog import filters
from cryocurate.catalog.filters import DB_INT_MAX, ENTITIES, Entity, Search
from cryocurate.errors import NotFoundError
from cryocurate.grading import access
from cryocurate.web.auth import current_user
from cryocurate.web.deps import JSON_INT_MAX, DbInt, JsonInt, portal_of

PREFIX = "/api/v1"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


router = APIRouter(prefix=PREFIX)


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
    """The JSON form of a search (``POST /api/v1/<plural>/query``). Numbers and booleans as
    JSON has them: ``"offset": false`` or ``"limit": "10"`` is refused, not coerced."""

    where: dict[str, Any] = PField(
        default_factory=dict,
        description='Filter spec, e.g. {"runs": {"annotations": {"object_name": '
        '{"_eq": "ribosome"}}}, "id": {"_gte": 10000}}',
    )
    order_by: list[str | dict[str, str]] | str | None = PField(
        None, description='["-id", "title"] or [{"id": "desc"}]'
    )
    limit: JsonInt = PField(DEFAULT_LIMIT, ge=0, le=MAX_LIMIT)
    offset: JsonInt = PField(0, ge=0, le=JSON_INT_MAX)
    include: list[str] = PField(default_factory=list, description='["runs", "dataset.id"]')
    count: bool = PField(
        True, strict=True, description="false: skip counting all matches (total is null)"
    )


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


def _terms(names: list[str]) -> Any:
    """A string of comma-separated ``names`` (or none): the pattern is documented in the spec, not
    checked by pydantic, so a wrong name gets the server's own line (the valid names)."""
    one = "|".join(re.escape(n) for n in names) or "(?!)"
    return Annotated[str, PField(json_schema_extra={"pattern": f"^(({one})(,({one}))*)?$"})]


def _order_names(ent: Entity) -> list[str]:
    names = [f.name for f in ent.fields.values() if f.kind != "json"]
    return names + [f"-{n}" for n in names]


def _include_names(ent: Entity) -> list[str]:
    return [n for link in ent.links for n in (link, f"{link}.id")]


def _add_routes(ent: Entity) -> None:
    row = _row_model(ent)
    order_term = _terms(_order_names(ent))
    include_term = _terms(_include_names(ent))
    fields = [n for n in _order_names(ent) if not n.startswith("-")]
    order_pair = Annotated[  # {field: "asc" | "desc"}: documented, checked by the server
        dict[str, str],
        PField(
            json_schema_extra={
                "propertyNames": {"enum": fields},
                "additionalProperties": {"enum": ["asc", "desc"]},
                "minProperties": 1,
                "maxProperties": 1,
            }
        ),
    ]
    body_model = create_model(
        f"{ent.name}Query",
        __base__=QueryBody,
        order_by=(
            list[order_term | order_pair]  # type: ignore[valid-type]
            | order_term  # type: ignore[valid-type]
            | None,
            PField(None, description='["-id", "title"]'),
        ),
        include=(list[include_term], PField(default_factory=list)),  # type: ignore[valid-type]
    )
    page = create_model(
        f"{ent.name}Page", items=(list[row], ...), total=(int | None, ...), limit=(int, ...),  # type: ignore[valid-type]
        offset=(int, ...),
    )  # fmt: skip
    tag = [ent.plural]

    def list_rows(
        request: Request,
        limit: int = Query(DEFAULT_LIMIT, ge=0, le=MAX_LIMIT),
        offset: int = Query(0, ge=0, le=DB_INT_MAX),
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
        ident: DbInt,
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

    # The documented forms of the parameters, per entity (field and relationship names). Set
    # here, as objects: the module's annotations are strings that name no local type.
    list_rows.__annotations__.update(order_by=list[order_term], include=list[include_term])
    get_row.__annotations__.update(include=list[include_term])
    query_rows.__annotations__.update(body=body_model)
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
