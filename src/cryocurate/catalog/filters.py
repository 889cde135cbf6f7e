"""One filter language for the catalog, shared by the JSON API, the Python client and the pages.

Why one module: the API's query strings, the client's ``Dataset.runs.annotations.object_name ==
"ribosome"`` and (later) the pages' search boxes must mean exactly the same thing on SQLite and
on PostgreSQL, so they all compile through here. The vocabulary is the CryoET Data Portal's
GraphQL ``where`` (``_eq``, ``_gte``, ``_ilike``…), so its users can read our filters.

A *spec* is a JSON object per entity: field → value (meaning ``_eq``) or field → {operator:
value}; relationship → a nested spec on the related entity (compiled to ``EXISTS``, so a dataset
matched by two runs is still listed once); ``_and``/``_or`` (lists of specs) and ``_not`` (a
spec) combine them::

    >>> search = Search.from_spec(                                  # doctest: +SKIP
    ...     entity("datasets"),
    ...     where={"runs": {"annotations": {"object_name": {"_eq": "ribosome"}}}},
    ...     order_by=["-id"], limit=50)
    >>> rows, total = search.fetch(session)                         # doctest: +SKIP

:func:`parse_params` turns the flat query-string form (``runs.name__ilike=%25J1%25``) into a
spec. Entities, fields and relationships are whitelisted from the models (:data:`ENTITIES`); an
unknown name is an :class:`~cryocurate.errors.InputError` that lists the valid ones.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ColumnElement, Select, and_, false, func, not_, or_, select, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import InstrumentedAttribute, Session, class_mapper
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from cryocurate.catalog import models as m
from cryocurate.catalog.spec_limits import check_spec
from cryocurate.errors import InputError

# The entities the API, the client and the pages may see, in the portal's order. Explicit, so a
# table added to the models is not published until someone decides it should be.
MODELS: tuple[type[m.Base], ...] = (
    m.Deposition,
    m.DepositionAuthor,
    m.Dataset,
    m.DatasetAuthor,
    m.DatasetFunding,
    m.Run,
    m.Class2DJob,
    m.ClassAverage,
    m.TiltSeries,
    m.TomogramVoxelSpacing,
    m.Tomogram,
    m.TomogramAuthor,
    m.Annotation,
    m.AnnotationAuthor,
    m.AnnotationShape,
    m.AnnotationFile,
    m.IdentifiedObject,
)

COMPARISONS = ("_eq", "_neq", "_gt", "_gte", "_lt", "_lte")
OPERATORS = (*COMPARISONS, "_in", "_nin", "_like", "_ilike", "_contains", "_is_null")
LOGICAL = ("_and", "_or", "_not")
# Which operators make sense for which kind of column.
_ORDERED_KINDS = {"int", "float", "str", "date", "datetime"}
_TEXT_KINDS = {"str", "enum"}


# ----------------------------------------------------------------------------------------------
# The registry: entities, their scalar fields and their relationships, read from the models.


@dataclass(frozen=True)
class Field:
    """A scalar column: its name, its kind (int, float, str, bool, date, datetime, enum,
    json) and, for enums, the allowed values."""

    name: str
    kind: str
    nullable: bool
    attribute: InstrumentedAttribute[Any]
    choices: tuple[str, ...] = ()

    def operators(self) -> tuple[str, ...]:
        if self.kind == "json":
            return ("_is_null",)
        ops = ["_eq", "_neq", "_in", "_nin", "_is_null"]
        if self.kind in _ORDERED_KINDS:
            ops += ["_gt", "_gte", "_lt", "_lte"]
        if self.kind in _TEXT_KINDS:
            ops += ["_like", "_ilike", "_contains"]
        return tuple(op for op in OPERATORS if op in ops)


@dataclass(frozen=True)
class Link:
    """A relationship: ``many`` (a list) or not; rows match where ``local`` == target's
    ``remote`` (a foreign key one way, the primary key the other)."""

    name: str
    target: str  # the target entity's plural
    many: bool
    local: str
    remote: str
    attribute: InstrumentedAttribute[Any]


@dataclass(frozen=True)
class Entity:
    """A published model: ``name`` is the class name, ``plural`` the URL segment (its table)."""

    name: str
    plural: str
    model: type[m.Base]
    primary_key: str
    fields: dict[str, Field]
    links: dict[str, Link]

    def field(self, name: str, path: str = "") -> Field:
        found = self.fields.get(name)
        if found is None:
            raise InputError(
                f"unknown field {path + name!r} of {self.plural}; "
                f"fields: {', '.join(self.fields)}"
                + (f"; relationships: {', '.join(self.links)}" if self.links else "")
            )
        return found

    def columns(self) -> list[InstrumentedAttribute[Any]]:
        return [f.attribute for f in self.fields.values()]

    def to_dict(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """A row's scalar fields as JSON-ready values (ISO dates, UTC datetimes, enum values,
        NaN/inf as null)."""
        return {name: _jsonable(row[name]) for name in self.fields}


def _kind(column: sa.Column[Any]) -> str:
    t = column.type
    if isinstance(t, sa.Enum):
        return "enum"
    for sa_type, kind in (
        (sa.Boolean, "bool"),
        (sa.Integer, "int"),
        (sa.Float, "float"),
        (sa.Numeric, "float"),
        (sa.DateTime, "datetime"),
        (sa.Date, "date"),
        (sa.JSON, "json"),
        (sa.String, "str"),
    ):
        if isinstance(t, sa_type):
            return kind
    return "json"  # anything else is opaque: listed, never compared


def _build_registry(models: Sequence[type[m.Base]]) -> dict[str, Entity]:
    plurals = {model: str(model.__table__.name) for model in models}  # type: ignore[attr-defined]
    entities: dict[str, Entity] = {}
    for model in models:
        mapper = class_mapper(model)
        fields: dict[str, Field] = {}
        for prop in mapper.column_attrs:
            column = prop.columns[0]
            kind = _kind(column)
            choices = tuple(column.type.enums) if kind == "enum" else ()  # type: ignore[attr-defined]
            attr = getattr(model, prop.key)
            fields[prop.key] = Field(prop.key, kind, bool(column.nullable), attr, choices)
        links: dict[str, Link] = {}
        for rel in mapper.relationships:
            target = rel.mapper.class_
            pairs = rel.local_remote_pairs or []
            if target not in plurals or len(pairs) != 1 or rel.secondary is not None:
                continue
            local, remote = pairs[0]
            links[rel.key] = Link(
                rel.key,
                plurals[target],
                bool(rel.uselist),
                mapper.get_property_by_column(local).key,
                rel.mapper.get_property_by_column(remote).key,
                getattr(model, rel.key),
            )
        (pk,) = mapper.primary_key
        plural = plurals[model]
        entities[plural] = Entity(
            model.__name__, plural, model, mapper.get_property_by_column(pk).key, fields, links
        )
    return entities


ENTITIES: dict[str, Entity] = _build_registry(MODELS)
"""Every published entity by plural (``datasets``, ``runs``, ``tiltseries``…)."""


def entity(name: str) -> Entity:
    """The entity called ``name`` (plural, as in URLs, or the class name)."""
    found = ENTITIES.get(name) or next((e for e in ENTITIES.values() if e.name == name), None)
    if found is None:
        raise InputError(f"unknown entity {name!r}; entities: {', '.join(ENTITIES)}")
    return found


# ----------------------------------------------------------------------------------------------
# Values: coerced to the column's type, so "2024-05-01", "true" and "10000" work from a URL.


def _jsonable(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.datetime):
        return _utc(value).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _utc(value: dt.datetime) -> dt.datetime:
    # SQLite keeps no zone and we always store UTC; PostgreSQL answers in the session's zone.
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("expected true or false")


DB_INT_MIN, DB_INT_MAX = -(2**63), 2**63 - 1  # what SQLite's INTEGER (and PostgreSQL's BIGINT) hold


def _db_int(value: int) -> int:
    """``value`` if a database integer can hold it: Python's ints have no bound, and SQLite
    fails on a bigger one (OverflowError) instead of comparing."""
    if not DB_INT_MIN <= value <= DB_INT_MAX:
        raise ValueError(f"out of range: integers go from {DB_INT_MIN} to {DB_INT_MAX}")
    return value


def coerce(field: Field, value: Any, label: str = "") -> Any:
    """``value`` as a Python value of ``field``'s column type (None stays None); ``label``
    names the field in errors (``runs.name``)."""
    if value is None:
        return None
    label = label or field.name
    try:
        if field.kind == "bool":
            return _to_bool(value)
        if isinstance(value, bool):
            raise ValueError(f"true/false is not a {field.kind}")
        if field.kind == "int":
            if isinstance(value, float) and value.is_integer():
                return _db_int(int(value))
            if isinstance(value, int | str):
                return _db_int(int(value))
        elif field.kind == "float":
            if isinstance(value, int | float | str):
                return float(value)
        elif field.kind == "str":
            if isinstance(value, str | int | float):
                return str(value)
        elif field.kind == "enum":
            if isinstance(value, str) and value in field.choices:
                return value
            raise ValueError(f"expected one of {', '.join(field.choices)}")
        elif field.kind == "date":
            if isinstance(value, dt.datetime):
                return value.date()
            if isinstance(value, dt.date):
                return value
            if isinstance(value, str):
                return dt.date.fromisoformat(value)
        elif field.kind == "datetime":
            if isinstance(value, dt.datetime):
                return _utc(value)
            if isinstance(value, dt.date):
                return dt.datetime.combine(value, dt.time(), dt.UTC)
            if isinstance(value, str):
                return _utc(dt.datetime.fromisoformat(value))
    except ValueError as err:
        raise InputError(f"{label}: {value!r} is not a valid {field.kind} ({err})") from err
    raise InputError(f"{label}: {value!r} is not a valid {field.kind}")


# ----------------------------------------------------------------------------------------------
# Case-sensitive LIKE everywhere: SQLite's LIKE ignores ASCII case, so there it becomes GLOB with
# the pattern translated; `\` escapes `%`, `_` and itself on both databases.


class _CaseSensitiveLike(FunctionElement[bool]):
    type = sa.Boolean()
    inherit_cache = True
    name = "case_sensitive_like"


@compiles(_CaseSensitiveLike)
def _compile_like(element: _CaseSensitiveLike, compiler: SQLCompiler, **kw: Any) -> str:
    column, like_pattern, _glob = list(element.clauses)
    return compiler.process(column.like(like_pattern, escape="\\"), **kw)


@compiles(_CaseSensitiveLike, "sqlite")
def _compile_like_sqlite(element: _CaseSensitiveLike, compiler: SQLCompiler, **kw: Any) -> str:
    column, _like, glob_pattern = list(element.clauses)
    return f"({compiler.process(column, **kw)} GLOB {compiler.process(glob_pattern, **kw)})"


_GLOB_LITERAL = {"*": "[*]", "?": "[?]", "[": "[[]"}


def _like_to_glob(pattern: str) -> str:
    """A LIKE pattern (``%``, ``_``, ``\\`` escapes) as the GLOB pattern matching the same."""
    out, chars = [], iter(pattern)
    for c in chars:
        if c == "\\":
            out.append(_GLOB_LITERAL.get(c := next(chars, "\\"), c))
        else:
            out.append({"%": "*", "_": "?"}.get(c) or _GLOB_LITERAL.get(c, c))
    return "".join(out)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# ----------------------------------------------------------------------------------------------
# Compiling a spec.


Guards = Mapping[str, ColumnElement[bool]]
"""Per entity (by plural), a condition every row of it must meet for the asking user (who may
see which grade annotations: :func:`cryocurate.grading.access.annotation_guards`). Applied to
the searched entity, to every relationship a filter goes through and to every include, so no
path reaches a row the guard hides."""


def where(
    ent: Entity, spec: Any, path: str = "", guards: Guards | None = None
) -> ColumnElement[bool]:
    """The SQL condition for ``spec`` on ``ent`` (``path`` names the nesting, for errors;
    ``guards`` restrict the related rows a relationship filter may match); a spec past the
    bounds of :mod:`~cryocurate.catalog.spec_limits` is refused first."""
    check_spec(spec)
    return _where(ent, spec, path, guards)


def _where(ent: Entity, spec: Any, path: str, guards: Guards | None) -> ColumnElement[bool]:
    if spec is None:
        return true()
    if not isinstance(spec, Mapping):
        raise InputError(
            f"{path or ent.plural}: expected a filter object, got {json.dumps(spec, default=str)}"
        )
    clauses: list[ColumnElement[bool]] = []
    for key, value in spec.items():
        if key in ("_and", "_or"):
            if not isinstance(value, list):
                raise InputError(f"{path}{key}: expected a list of filter objects")
            parts = [_where(ent, part, path, guards) for part in value]
            if key == "_and":
                clauses.append(and_(true(), *parts))
            else:
                clauses.append(or_(false(), *parts))
        elif key == "_not":
            clauses.append(not_(_where(ent, value, path, guards)))
        elif key in ent.links:
            link = ent.links[key]
            if not isinstance(value, Mapping) or any(op in OPERATORS for op in value):
                target = ENTITIES[link.target]
                raise InputError(
                    f"{path + key!r} is a relationship, not a field: filter on its fields "
                    f"({', '.join(target.fields)}), e.g. {{{key!r}: {{'id': {{'_eq': 1}}}}}}"
                )
            inner = _where(ENTITIES[link.target], value, f"{path}{key}.", guards)
            guard = (guards or {}).get(link.target)
            clauses.append(_related(link, inner if guard is None else and_(inner, guard)))
        elif key.startswith("_"):
            raise InputError(
                f"{path or ent.plural}: {key!r} is not a logical operator "
                f"({', '.join(LOGICAL)}); field operators go under a field, e.g. "
                f"{{'id': {{{key!r}: ...}}}}"
            )
        else:
            clauses.append(_field_condition(ent.field(key, path), value, path))
    return and_(true(), *clauses)


def _related(link: Link, inner: ColumnElement[bool]) -> ColumnElement[bool]:
    """Rows with a related row matching ``inner``.

    A to-many link is an ``EXISTS``; a many-to-one link on a single foreign key is
    ``fk IN (SELECT pk … WHERE inner)``, which databases evaluate once instead of once per
    row: on five million class averages filtered by their run's dataset that is the
    difference between seconds and milliseconds.
    """
    prop = link.attribute.property
    pairs = prop.local_remote_pairs
    # A nullable key stays an EXISTS: under _not, "NULL IN (…)" would drop the row.
    if link.many or len(pairs) != 1 or prop.secondary is not None or pairs[0][0].nullable:
        return link.attribute.any(inner) if link.many else link.attribute.has(inner)
    local, remote = pairs[0]
    return local.in_(select(remote).where(inner))


def _field_condition(field: Field, ops: Any, path: str) -> ColumnElement[bool]:
    if not isinstance(ops, Mapping):
        ops = {"_eq": ops}
    col: Any = field.attribute
    allowed = field.operators()
    clauses: list[ColumnElement[bool]] = []
    for op, raw in ops.items():
        if op not in allowed:
            raise InputError(
                f"{path}{field.name}: operator {op!r} does not apply to a {field.kind} field; "
                f"use one of {', '.join(allowed)}"
            )
        if op == "_is_null":
            clauses.append(col.is_(None) if _is_true(field, raw) else col.is_not(None))
        elif op in ("_in", "_nin"):
            if not isinstance(raw, list | tuple):
                raise InputError(f"{path}{field.name}: {op} expects a list of values")
            values = [coerce(field, v, path + field.name) for v in raw]
            present = [v for v in values if v is not None]
            if op == "_in":
                cond = col.in_(present)
                clauses.append(or_(cond, col.is_(None)) if None in values else cond)
            else:
                cond = col.not_in(present)
                clauses.append(and_(cond, col.is_not(None)) if None in values else cond)
        elif op in ("_like", "_ilike", "_contains"):
            if not isinstance(raw, str):
                raise InputError(f"{path}{field.name}: {op} expects a string pattern")
            text = sa.type_coerce(col, sa.String())
            if op == "_like":
                clauses.append(_CaseSensitiveLike(text, raw, _like_to_glob(raw)))
            elif op == "_ilike":
                clauses.append(text.ilike(raw, escape="\\"))
            else:
                clauses.append(text.ilike(f"%{_escape_like(raw)}%", escape="\\"))
        else:
            value = coerce(field, raw, path + field.name)
            if value is None and op in ("_eq", "_neq"):
                clauses.append(col.is_(None) if op == "_eq" else col.is_not(None))
            elif value is None:
                raise InputError(f"{path}{field.name}: {op} needs a value, not null")
            else:
                clauses.append(_COMPARE[op](col, value))
    return and_(true(), *clauses)


def _is_true(field: Field, raw: Any) -> bool:
    try:
        return _to_bool(raw)
    except ValueError:
        raise InputError(f"{field.name}: _is_null expects true or false, not {raw!r}") from None


_COMPARE: dict[str, Any] = {
    "_eq": lambda c, v: c == v,
    "_neq": lambda c, v: c != v,
    "_gt": lambda c, v: c > v,
    "_gte": lambda c, v: c >= v,
    "_lt": lambda c, v: c < v,
    "_lte": lambda c, v: c <= v,
}


def order_clauses(ent: Entity, terms: Iterable[Any] | str | None) -> list[Any]:
    """``["-id", "title"]`` or ``[{"title": "desc"}]`` → ORDER BY terms, nulls last either way,
    always ending with the primary key so pages never overlap."""
    if isinstance(terms, str):
        terms = [terms]
    pairs: list[tuple[str, str]] = []
    for term in terms or []:
        if isinstance(term, str):
            for part in (p.strip() for p in term.split(",")):
                if part:
                    pairs.append((part[1:], "desc") if part[0] == "-" else (part, "asc"))
        elif isinstance(term, Mapping) and len(term) == 1:
            ((name, direction),) = term.items()
            pairs.append((str(name), str(direction).lower()))
        else:
            raise InputError(
                f"order_by: expected 'field', '-field' or {{field: dir}}, not {term!r}"
            )
    clauses, seen = [], set()
    for name, direction in pairs:
        field = ent.field(name)
        if field.kind == "json" or direction not in ("asc", "desc"):
            raise InputError(f"order_by: cannot order by {name!r} {direction!r}")
        column: Any = field.attribute
        term = column.asc() if direction == "asc" else column.desc()
        # NULLS LAST only where nulls can occur: on PostgreSQL it would keep a NOT NULL column's
        # index (the primary key's, say) from serving the ORDER BY.
        nullable = any(c.nullable for c in getattr(column.property, "columns", []))
        clauses.append(term.nulls_last() if nullable else term)
        seen.add(name)
    if ent.primary_key not in seen:
        clauses.append(ent.fields[ent.primary_key].attribute.asc())
    return clauses


# ----------------------------------------------------------------------------------------------
# The flat, query-string form.

RESERVED_PARAMS = ("limit", "offset", "order_by", "include", "count")
_FLAT_OPS = {op[1:] for op in OPERATORS}


def parse_params(params: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Query-string pairs → a spec: ``path[__op]=value``, where ``path`` is ``field`` or
    ``rel.….field`` and ``op`` one of eq (default), neq, gt, gte, lt, lte, in, nin (comma
    separated, or a JSON list), like, ilike, contains, is_null. Pairs on one relationship path
    apply to the same related row; a repeated ``field__op`` is AND-ed."""
    spec: dict[str, Any] = {}
    for key, raw in params:
        if key in RESERVED_PARAMS:
            continue
        path, op = key, "eq"
        if "__" in key:
            path, op = key.rsplit("__", 1)
            if op not in _FLAT_OPS:
                raise InputError(
                    f"unknown operator {op!r} in {key!r}; operators: {', '.join(sorted(_FLAT_OPS))}"
                )
        value: Any = raw
        if op in ("in", "nin"):
            value = _parse_list(key, raw)
        *links, name = path.split(".")
        node = spec
        for link in links:
            node = node.setdefault(link, {})
        ops = node.setdefault(name, {})
        if not isinstance(ops, dict) or f"_{op}" in ops:
            node.setdefault("_and", []).append({name: {f"_{op}": value}})
        else:
            ops[f"_{op}"] = value
    return spec


def _parse_list(key: str, raw: str) -> list[Any]:
    if raw.lstrip().startswith("["):
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as err:
            raise InputError(f"{key}: not a JSON list ({err})") from err
        if not isinstance(value, list):
            raise InputError(f"{key}: expected a JSON list")
        return value
    return [part.strip() for part in raw.split(",") if part.strip()]


# ----------------------------------------------------------------------------------------------
# Running a search.


@dataclass(frozen=True)
class Search:
    """A compiled search on one entity: condition, order and page."""

    entity: Entity
    condition: ColumnElement[bool]
    order: list[Any]
    limit: int | None = None
    offset: int = 0

    @classmethod
    def from_spec(
        cls,
        ent: Entity,
        where_spec: Mapping[str, Any] | None = None,
        order_by: Iterable[Any] | str | None = None,
        limit: int | None = None,
        offset: int = 0,
        guards: Guards | None = None,
    ) -> Search:
        if (limit is not None and limit < 0) or offset < 0:
            raise InputError("limit and offset must not be negative")
        if (limit is not None and limit > DB_INT_MAX) or offset > DB_INT_MAX:
            raise InputError(f"limit and offset must be at most {DB_INT_MAX}")
        condition = where(ent, where_spec, guards=guards)
        guard = (guards or {}).get(ent.plural)
        if guard is not None:
            condition = and_(condition, guard)
        return cls(ent, condition, order_clauses(ent, order_by), limit, offset)

    def statement(self) -> Select[Any]:
        stmt = select(*self.entity.columns()).where(self.condition).order_by(*self.order)
        if self.limit is not None:
            stmt = stmt.limit(self.limit)
        return stmt.offset(self.offset) if self.offset else stmt

    def count_statement(self) -> Select[Any]:
        return select(func.count()).select_from(self.entity.model).where(self.condition)

    def fetch(
        self, session: Session, *, count: bool = True
    ) -> tuple[list[dict[str, Any]], int | None]:
        """The page's rows as dicts, and the number of all matches (None without ``count``)."""
        rows = []
        if self.limit != 0:
            rows = [self.entity.to_dict(r._mapping) for r in session.execute(self.statement())]
        total = int(session.scalar(self.count_statement()) or 0) if count else None
        return rows, total


def parse_includes(ent: Entity, terms: Iterable[str]) -> list[tuple[Link, bool]]:
    """``["runs", "dataset.id"]`` → (relationship, ids only?) pairs."""
    out = []
    for term in terms:
        for part in (p.strip() for p in term.split(",")):
            if not part:
                continue
            name, _, suffix = part.partition(".")
            if name not in ent.links or suffix not in ("", "id"):
                raise InputError(
                    f"include: unknown relationship {part!r} of {ent.plural}; "
                    f"relationships: {', '.join(ent.links) or 'none'} (add .id for ids only)"
                )
            out.append((ent.links[name], suffix == "id"))
    return out


def attach_related(
    session: Session,
    rows: list[dict[str, Any]],
    includes: Sequence[tuple[Link, bool]],
    guards: Guards | None = None,
) -> None:
    """Add each included relationship to ``rows`` (rows, or primary keys with ids only): one
    query per relationship for the whole page, never one per row; ``guards`` hide rows."""
    for link, ids_only in includes:
        target = ENTITIES[link.target]
        guard = (guards or {}).get(link.target, true())
        keys = {row[link.local] for row in rows if row[link.local] is not None}
        remote: Any = target.fields[link.remote].attribute
        pk: Any = target.fields[target.primary_key].attribute
        groups: dict[Any, list[Any]] = {}
        if keys:
            if ids_only:
                stmt = select(remote, pk).where(remote.in_(keys), guard).order_by(pk)
                for key, ident in session.execute(stmt):
                    groups.setdefault(key, []).append(ident)
            else:
                stmt = select(*target.columns()).where(remote.in_(keys), guard).order_by(pk)
                for r in session.execute(stmt):
                    groups.setdefault(r._mapping[link.remote], []).append(
                        target.to_dict(r._mapping)
                    )
        for row in rows:
            found = groups.get(row[link.local], [])
            row[link.name] = found if link.many else (found[0] if found else None)
