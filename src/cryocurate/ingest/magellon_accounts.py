"""Whose account an imported tkteach database's grades go to.

A tkteach database names its labeller only in its file name (``storage_<email>.db``), and a
file name is whatever the person who handed over the folder typed. So an import never puts
grades on an account that already exists unless asked to:

* ``--labeller storage_x.db=EMAIL`` maps a database to an account explicitly (existing or
  new): the admin running the import vouches for it;
* an unmapped database whose email has no account yet makes a new account (as before: the
  ``labeller`` role, no password, invite them later);
* an unmapped database whose email *is* an account is refused, in one line naming the file and
  the ``--labeller`` to give, before anything is written. The one exception is a rerun: if this
  database's own grade lines were already imported into that account in this campaign (their
  request ids are derived from campaign, email, image and letter), the account is the one an
  earlier import made or was told to use, and importing again stays a no-op.

Disabled accounts are refused even when mapped: their grades could not be recorded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cryocurate import accounts
from cryocurate.catalog.models import GradeEvent, User
from cryocurate.errors import InputError

#: ``DATABASE=EMAIL``: split at the last ``.db=`` (an email holds no ``.db=``).
_SEPARATOR = ".db="
_CHUNK = 500  # request ids per IN (...) query, well under every database's parameter limit


def parse_labeller_mapping(values: Iterable[str], databases: Sequence[Path]) -> dict[str, str]:
    """``["storage_x@a.db=ann@lab.edu", …]`` → ``{"storage_x@a.db": "ann@lab.edu"}``.

    Keys are database file names (a path given is reduced to its name); each must name one of
    ``databases``, the ones being imported, and each value must be an email.

    Raises:
        InputError: a value is not ``DATABASE=EMAIL``, names no imported database, names one
            twice, or maps it to something that is not an email.
    """
    names = {Path(p).name for p in databases}
    mapping: dict[str, str] = {}
    for value in values:
        head, sep, email = value.rpartition(_SEPARATOR)
        if not sep or not head:
            raise InputError(
                f"--labeller {value!r} is not DATABASE=EMAIL",
                hint="e.g. --labeller storage_ann@lab.edu.db=ann@lab.edu",
            )
        database = Path(head + ".db").name
        if database not in names:
            listed = ", ".join(sorted(names)) or "none"
            raise InputError(
                f"--labeller {value!r}: {database} is not one of the databases imported ({listed})",
                hint="name a storage_*.db of the folder, or one given with --labels",
            )
        if database in mapping:
            raise InputError(f"--labeller names {database} twice", hint="give it once")
        try:
            mapping[database] = accounts.normalize_email(email)
        except InputError as err:
            raise InputError(
                f"--labeller {value!r}: {email!r} is not an email address",
                hint="map the database to the account's email",
            ) from err
    return mapping


@dataclass(frozen=True)
class Claim:
    """One database's claim on an account, as the import would make it."""

    database: Path
    email: str  # the account the grades would go to
    mapped: bool  # given with --labeller
    #: The request ids this database's grade lines have in the target campaign (empty when the
    #: campaign does not exist yet): evidence that an earlier import used this account.
    request_ids: frozenset[str] = frozenset()


def _imported_before(session: Session, user_id: int, request_ids: frozenset[str]) -> bool:
    ids = sorted(request_ids)
    for start in range(0, len(ids), _CHUNK):
        hit = session.scalar(
            sa.select(GradeEvent.id)
            .where(
                GradeEvent.user_id == user_id,
                GradeEvent.request_id.in_(ids[start : start + _CHUNK]),
            )
            .limit(1)
        )
        if hit is not None:
            return True
    return False


def accounts_to_create(session: Session, claims: Sequence[Claim]) -> list[str]:
    """The emails that need a new account; refuses a claim on an existing one not allowed.

    Raises:
        InputError: an unmapped database names an existing account it was never imported
            into, or a database maps to a disabled account.
    """
    create: list[str] = []
    for claim in claims:
        user = session.scalar(sa.select(User).where(User.email == claim.email))
        if user is None:
            create.append(claim.email)
            continue
        if user.disabled:
            raise InputError(
                f"its grades would go to {claim.email}, whose account is disabled",
                where=claim.database.name,
                hint=f"enable the account, or map the database to another email with "
                f"--labeller {claim.database.name}=EMAIL",
            )
        if claim.mapped or _imported_before(session, user.id, claim.request_ids):
            continue
        raise InputError(
            f"{claim.email} already has an account on this portal, and an import never adds "
            f"grades to an existing account unasked",
            where=claim.database.name,
            hint=f"to grade as that account give --labeller {claim.database.name}="
            f"{claim.email}; to keep them apart map it to a new email",
        )
    return create


__all__ = ["Claim", "accounts_to_create", "parse_labeller_mapping"]
