"""Model classes, the filter DSL and lazy, batched relationships, shaped like the CZ client.

Why this shape: users of the CryoET Data Portal's client already write
``Dataset.find(client, [Dataset.runs.annotations.object_name == "ribosome"])``; the same line
works here. Class attributes build filters (``Run.dataset_id >= 10000``, ``.ilike("%ribo%")``,
``._in([...])``, ``.is_null()``), instance attributes hold values (``run.name``) or load
relationships (``run.dataset``, ``dataset.runs``) on first access. Unlike the CZ client, a
relationship is cached per object and loaded for every object of the same result page at
once: ``for run in runs: run.dataset`` costs one request per page, not one per run.

Filters compile to the server's JSON spec (:mod:`cryocurate.catalog.filters` documents it);
a list of filters is merged the CZ way, so conditions on one relationship path constrain the
same related row. ``&``, ``|`` and ``~`` combine filters as AND, OR and NOT.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Self, TypeVar, overload

if TYPE_CHECKING:
    from cryocurate.client._client import Client

T = TypeVar("T")
OPERATORS = frozenset(
    {"_eq", "_neq", "_gt", "_gte", "_lt", "_lte", "_in", "_nin", "_like", "_ilike", "_contains"}
    | {"_is_null"}
)


def _wire(value: Any) -> Any:
    """A filter value as JSON."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.date):  # datetimes too
        return value.isoformat()
    if isinstance(value, Model):
        return value._primary_key_value()
    return value


class Filter:
    """A condition on a model; ``spec`` is its JSON form."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec

    def __and__(self, other: Filter) -> Filter:
        return Filter({"_and": [self.spec, other.spec]})

    def __or__(self, other: Filter) -> Filter:
        return Filter({"_or": [self.spec, other.spec]})

    def __invert__(self) -> Filter:
        return Filter({"_not": self.spec})

    def __bool__(self) -> bool:
        raise TypeError("combine filters with &, | and ~ (not `and`, `or`, `not`)")

    def __repr__(self) -> str:
        return f"Filter({self.spec!r})"


def _is_ops(spec: Any) -> bool:
    return isinstance(spec, dict) and bool(spec) and set(spec) <= OPERATORS


def merge(specs: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Deep-merge filter specs (the CZ client's rule); clashing conditions are AND-ed."""
    out: dict[str, Any] = {}
    for spec in specs:
        for key, value in spec.items():
            if key not in out:
                out[key] = value
            elif key == "_and":
                out["_and"] = [*out["_and"], *value]
            elif _is_ops(out[key]) and _is_ops(value) and not set(out[key]) & set(value):
                out[key] = {**out[key], **value}
            elif (
                isinstance(out[key], dict)
                and isinstance(value, dict)
                and not key.startswith("_")
                and not _is_ops(out[key])
                and not _is_ops(value)
            ):
                out[key] = merge([out[key], value])
            else:
                out.setdefault("_and", []).append({key: value})
    return out


def where_spec(filters: Filter | Iterable[Filter | Mapping[str, Any]] | None) -> dict[str, Any]:
    """``[filter, …]`` (or one filter, or raw spec dicts) → one JSON spec."""
    if filters is None:
        return {}
    if isinstance(filters, Filter):
        return filters.spec
    specs = []
    for f in filters:
        if isinstance(f, Filter):
            specs.append(f.spec)
        elif isinstance(f, Mapping):
            specs.append(dict(f))
        else:
            raise TypeError(f"not a filter: {f!r} (build one like Dataset.id == 10000)")
    return merge(specs)


class FieldRef:
    """A scalar field reached from a model through zero or more relationships
    (``Dataset.title``, ``Dataset.runs.annotations.object_name``); operators build filters."""

    def __init__(self, path: tuple[str, ...], field: Field[Any]) -> None:
        self.path, self.field = path, field

    def _filter(self, op: str, value: Any) -> Filter:
        spec: dict[str, Any] = {self.field.name: {op: value}}
        for link in reversed(self.path):
            spec = {link: spec}
        return Filter(spec)

    def __eq__(self, value: object) -> Filter:  # type: ignore[override]
        return self._filter("_eq", _wire(value))

    def __ne__(self, value: object) -> Filter:  # type: ignore[override]
        return self._filter("_neq", _wire(value))

    def __gt__(self, value: Any) -> Filter:
        return self._filter("_gt", _wire(value))

    def __ge__(self, value: Any) -> Filter:
        return self._filter("_gte", _wire(value))

    def __lt__(self, value: Any) -> Filter:
        return self._filter("_lt", _wire(value))

    def __le__(self, value: Any) -> Filter:
        return self._filter("_lte", _wire(value))

    __hash__ = None  # type: ignore[assignment]

    def like(self, pattern: str) -> Filter:
        """Case-sensitive match, ``%`` any run of characters, ``_`` one character."""
        return self._filter("_like", pattern)

    def ilike(self, pattern: str) -> Filter:
        """Like :meth:`like`, ignoring case."""
        return self._filter("_ilike", pattern)

    def contains(self, text: str) -> Filter:
        """Holds ``text`` anywhere, ignoring case (no wildcards)."""
        return self._filter("_contains", text)

    def _in(self, values: Iterable[Any]) -> Filter:
        return self._filter("_in", [_wire(v) for v in values])

    def _nin(self, values: Iterable[Any]) -> Filter:
        return self._filter("_nin", [_wire(v) for v in values])

    in_, not_in = _in, _nin

    def is_null(self, value: bool = True) -> Filter:
        return self._filter("_is_null", bool(value))

    def asc(self) -> str:
        return self._order_name()

    def desc(self) -> str:
        return "-" + self._order_name()

    def _order_name(self) -> str:
        if self.path:
            raise ValueError(f"order by the model's own fields, not {self!r}")
        return self.field.name

    def __repr__(self) -> str:
        return ".".join((self.field.owner.__name__, *self.path, self.field.name))


class RelationshipRef:
    """A relationship reached from a model (``Dataset.runs``): its attributes go on to the
    target's fields and relationships."""

    def __init__(self, path: tuple[str, ...], target: str) -> None:
        self.path, self.target = path, target

    def __getattr__(self, name: str) -> FieldRef | RelationshipRef:
        if name.startswith("__"):
            raise AttributeError(name)
        model = Model.model(self.target)
        if name in model._fields:
            return FieldRef(self.path, model._fields[name])
        if name in model._relationships:
            return RelationshipRef((*self.path, name), model._relationships[name].target)
        raise AttributeError(
            f"{model.__name__} has no field or relationship {name!r}; fields: "
            f"{', '.join(model._fields)}; relationships: {', '.join(model._relationships)}"
        )

    def exists(self) -> Filter:
        """At least one related row (``~Dataset.runs.exists()``: none)."""
        spec: dict[str, Any] = {}
        for link in reversed(self.path):
            spec = {link: spec}
        return Filter(spec)

    def _refuse(self, *_: Any) -> Filter:
        model = Model.model(self.target)
        raise TypeError(
            f"{'.'.join(self.path)} is a relationship to {model.__name__}; compare one of "
            f"its fields instead: {', '.join(model._fields)}"
        )

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _refuse  # type: ignore[assignment]
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<relationship {'.'.join(self.path)} → {self.target}>"


_PARSERS: dict[str, Any] = {"date": dt.date.fromisoformat, "datetime": dt.datetime.fromisoformat}


class Field(Generic[T]):
    """A scalar field: on the class a :class:`FieldRef` (for filters), on an instance its value
    (dates and datetimes parsed)."""

    def __init__(self, kind: str, *, nullable: bool = True, choices: Sequence[str] = ()) -> None:
        self.kind, self.nullable, self.choices = kind, nullable, tuple(choices)
        self.name = ""
        self.owner: type[Model] = Model

    def __set_name__(self, owner: type[Model], name: str) -> None:
        self.name, self.owner = name, owner

    def parse(self, raw: Any) -> Any:
        parser = _PARSERS.get(self.kind)
        return parser(raw) if parser is not None and isinstance(raw, str) else raw

    @overload
    def __get__(self, obj: None, owner: type[Model]) -> FieldRef: ...
    @overload
    def __get__(self, obj: Model, owner: type[Model]) -> T: ...
    def __get__(self, obj: Model | None, owner: type[Model]) -> FieldRef | T:
        if obj is None:
            return FieldRef((), self)
        return obj._data.get(self.name)  # type: ignore[no-any-return]

    def __set__(self, obj: Model, value: Any) -> None:
        raise AttributeError(f"{self.name} is read-only: the client does not write the catalog")


class Relationship(Generic[T]):
    """A relationship: on the class a :class:`RelationshipRef`, on an instance the related
    object (``many=False``) or list, loaded on first access for the object's whole page."""

    def __init__(self, target: str, *, many: bool, local: str, remote: str) -> None:
        self.target, self.many, self.local, self.remote = target, many, local, remote
        self.name = ""

    def __set_name__(self, owner: type[Model], name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type[Model]) -> RelationshipRef: ...
    @overload
    def __get__(self, obj: Model, owner: type[Model]) -> T: ...
    def __get__(self, obj: Model | None, owner: type[Model]) -> RelationshipRef | T:
        if obj is None:
            return RelationshipRef((self.name,), self.target)
        return obj._load(self)  # type: ignore[no-any-return]

    def __set__(self, obj: Model, value: Any) -> None:
        raise AttributeError(f"{self.name} is read-only")


class Model:
    """Base of the client's entity classes (generated in ``_models.py``)."""

    _plural: ClassVar[str] = ""
    _primary_key: ClassVar[str] = "id"
    _fields: ClassVar[dict[str, Field[Any]]] = {}
    _relationships: ClassVar[dict[str, Relationship[Any]]] = {}
    _registry: ClassVar[dict[str, type[Model]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        members = {k: v for base in reversed(cls.__mro__) for k, v in vars(base).items()}
        cls._fields = {k: v for k, v in members.items() if isinstance(v, Field)}
        cls._relationships = {k: v for k, v in members.items() if isinstance(v, Relationship)}
        if cls._plural:
            Model._registry[cls.__name__] = cls

    @staticmethod
    def model(name: str) -> type[Model]:
        return Model._registry[name]

    def __init__(
        self, client: Client, data: Mapping[str, Any], batch: list[Model] | None = None
    ) -> None:
        self._client = client
        self._data = {name: f.parse(data.get(name)) for name, f in self._fields.items()}
        self._cache: dict[str, Any] = {}
        self._batch = batch if batch is not None else [self]

    def to_dict(self) -> dict[str, Any]:
        """The scalar fields (dates and datetimes as Python objects)."""
        return dict(self._data)

    def _primary_key_value(self) -> Any:
        return self._data[self._primary_key]

    def __repr__(self) -> str:
        label = next((k for k in ("name", "title", "object_name") if k in self._data), None)
        extra = f", {label}={self._data[label]!r}" if label else ""
        return f"{type(self).__name__}({self._primary_key}={self._primary_key_value()!r}{extra})"

    # -- queries ---------------------------------------------------------------------------------

    @classmethod
    def find(
        cls,
        client: Client,
        query_filters: Filter | Iterable[Filter | Mapping[str, Any]] | None = None,
        *,
        order_by: str | FieldRef | Sequence[str | FieldRef] | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Self]:
        """Every match (``limit=None``), fetched page by page, or at most ``limit`` of them
        after skipping ``offset``; filters are AND-ed (merged as the CZ client does)."""
        pages = cls._pages(client, query_filters, order_by, limit, offset)
        return [obj for page in pages for obj in page]

    @classmethod
    def find_iter(
        cls,
        client: Client,
        query_filters: Filter | Iterable[Filter | Mapping[str, Any]] | None = None,
        *,
        order_by: str | FieldRef | Sequence[str | FieldRef] | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> Iterator[Self]:
        """Like :meth:`find`, yielding as pages arrive (for results too big to hold)."""
        for page in cls._pages(client, query_filters, order_by, limit, offset):
            yield from page

    @classmethod
    def _pages(
        cls,
        client: Client,
        query_filters: Any,
        order_by: Any,
        limit: int | None,
        offset: int,
    ) -> Iterator[list[Self]]:
        for rows in client.query_pages(
            cls._plural, where_spec(query_filters), _order_terms(order_by), limit, offset
        ):
            batch: list[Model] = []
            page = [cls(client, row, batch) for row in rows]
            batch.extend(page)
            yield page

    @classmethod
    def get_by_id(cls, client: Client, id: Any) -> Self | None:  # the CZ client's name
        """The object with this primary key, or None."""
        row = client.get_row(cls._plural, id)
        return None if row is None else cls(client, row)

    @classmethod
    def count(
        cls,
        client: Client,
        query_filters: Filter | Iterable[Filter | Mapping[str, Any]] | None = None,
    ) -> int:
        """How many objects match, without fetching them."""
        return client.count(cls._plural, where_spec(query_filters))

    # -- relationships ---------------------------------------------------------------------------

    def _load(self, rel: Relationship[Any]) -> Any:
        if rel.name not in self._cache:
            pending = [m for m in self._batch if rel.name not in m._cache]
            keys = sorted({m._data[rel.local] for m in pending} - {None})
            target = Model.model(rel.target)
            related: list[Model] = []
            for start in range(0, len(keys), 500):
                spec = {rel.remote: {"_in": keys[start : start + 500]}}
                for rows in self._client.query_pages(
                    target._plural, spec, [target._primary_key], None, 0
                ):
                    related.extend(target(self._client, row, related) for row in rows)
            groups: dict[Any, list[Model]] = {}
            for obj in related:
                groups.setdefault(obj._data[rel.remote], []).append(obj)
            for m in pending:
                found = groups.get(m._data[rel.local], [])
                m._cache[rel.name] = list(found) if rel.many else (found[0] if found else None)
        return self._cache[rel.name]


def _order_terms(order_by: str | FieldRef | Sequence[str | FieldRef] | None) -> list[str]:
    if order_by is None:
        return []
    if isinstance(order_by, str | FieldRef):
        order_by = [order_by]
    return [t.asc() if isinstance(t, FieldRef) else str(t) for t in order_by]
