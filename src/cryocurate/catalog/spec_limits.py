"""How large a filter spec (a ``where`` tree) may be, checked before it is compiled.

Why: a spec arrives from anyone (the API's JSON body and query string, the Browse page's
search box), and what it costs grows with its size, up to the point where the database or
Python gives up with an error we did not choose: an ``_or`` of 20,000 terms is past SQLite's
expression depth (1,000), a relationship chain of 11 is past its parser stack, one of 100 is
past Python's recursion limit. So a spec is measured first, without recursion (a deep spec
cannot overflow the measuring itself), and one past the bounds is an
:class:`~cryocurate.errors.InputError` naming the bound (400 on the web). Not ``TooLargeError``
(413): that is for request *bodies* too large to read; a small body can hold a spec too deep to
run, and a spec is refused for its shape, as any other malformed filter.

The bounds, each far above any search a person or the Python client writes:

``MAX_CONDITIONS`` (500)
    field and relationship conditions (and empty ``_and``/``_or`` members) in the whole spec;
``MAX_VALUES`` (10,000)
    values in all ``_in``/``_nin`` lists together (each is one bound parameter; SQLite allows
    32,766 per statement, PostgreSQL 65,535);
``MAX_LINKS`` (8)
    relationships on one path (``runs.annotations.…``: the catalog's longest meaningful chain
    is 5);
``MAX_DEPTH`` (32)
    nesting of objects on one path: relationships, ``_not``, members of ``_and``/``_or`` (the
    client's ``a | b | c`` nests one level per operator).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryocurate.errors import InputError

MAX_CONDITIONS = 500
MAX_VALUES = 10_000
MAX_LINKS = 8
MAX_DEPTH = 32
_LISTS = ("_in", "_nin")
_FIELD_OPERATORS = frozenset(
    ("_eq", "_neq", "_gt", "_gte", "_lt", "_lte", "_in", "_nin", "_like", "_ilike", "_contains")
) | {"_is_null"}


def check_spec(spec: Any) -> None:
    """Raise :class:`InputError` if ``spec`` is past one of the bounds. A key whose value is
    an object without field operators (``_eq``, ``_in``…) is counted as a relationship:
    whether it names one is for compiling to say."""
    conditions = values = 0
    stack: list[tuple[Any, int, int]] = [(spec, 1, 0)]  # (node, depth, links on the path)
    while stack:
        node, depth, chain = stack.pop()
        if not isinstance(node, Mapping):
            continue  # not a spec: compiling it says what is wrong
        if depth > MAX_DEPTH:
            raise InputError(
                f"the filter is nested more than {MAX_DEPTH} levels deep",
                hint="flatten it: _and/_or take lists of any length",
            )
        for key, value in node.items():
            if key in ("_and", "_or"):
                members = value if isinstance(value, list) else []
                conditions += sum(1 for m in members if not m)  # the others count their own
                stack.extend((member, depth + 1, chain) for member in members)
            elif key == "_not":
                stack.append((value, depth + 1, chain))
            elif _is_link(key, value):
                if chain + 1 > MAX_LINKS:
                    raise InputError(
                        f"the filter follows more than {MAX_LINKS} relationships in a row "
                        f"(at {key!r})",
                        hint="filter on the entity nearer the end of the chain instead",
                    )
                conditions += 1
                stack.append((value, depth + 1, chain + 1))
            else:
                conditions += 1
                if isinstance(value, Mapping):
                    for op, raw in value.items():
                        if op in _LISTS and isinstance(raw, list | tuple):
                            values += len(raw)
            if conditions > MAX_CONDITIONS:
                raise InputError(
                    f"the filter has more than {MAX_CONDITIONS} conditions",
                    hint="split the search, or use _in with a list of values",
                )
            if values > MAX_VALUES:
                raise InputError(
                    f"the filter's _in/_nin lists hold more than {MAX_VALUES} values together",
                    hint="split the search into several",
                )


def _is_link(key: str, value: Any) -> bool:
    if key.startswith("_") or not isinstance(value, Mapping):
        return False
    return not any(op in _FIELD_OPERATORS for op in value)
