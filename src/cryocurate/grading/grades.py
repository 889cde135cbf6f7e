"""Recording grades so that none is lost and none counts twice.

The browser makes an id for every grade (or skip) the moment the key is pressed and sends it
until the server acknowledges it, across reloads, lost networks and server restarts. Here:

* a request id already seen is acknowledged again and changes nothing (retries are harmless);
* every grade or skip is appended to :class:`GradeEvent` (the history);
* the labeller's *current* grade of the item (one per labeller, item and look) is set, unless a
  newer change (by the browser's clock, ``given_at``) is already stored: a late retry of an old
  keypress never undoes a later correction.

All of it is one short transaction. Two requests racing on the same row meet a unique
constraint; the loser retries once in a fresh transaction, so both SQLite and PostgreSQL give
the same result without dialect-specific upserts.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cryocurate.catalog.models import (
    Annotation,
    Campaign,
    CampaignItem,
    Class2DJob,
    Grade,
    GradeEvent,
    QueueEntry,
    User,
    utcnow,
)
from cryocurate.errors import ConflictError, InputError, NotFoundError
from cryocurate.grading.annotations import ensure_grade_annotation
from cryocurate.grading.campaigns import get_campaign, is_labeller
from cryocurate.grading.scales import key_of, value_of
from cryocurate.portal import Portal

REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:-]{8,64}$")
# Browsers' clocks drift; a keypress "from the future" is clamped to now so it cannot block
# every later correction.
MAX_CLOCK_SKEW = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class GradeRequest:
    """One keypress as the browser sends it. ``grade`` None is a skip."""

    request_id: str
    item_id: int
    grade: str | int | None
    repeat: bool = False
    given_at: dt.datetime | None = None
    seconds_on_item: float | None = None


@dataclass(frozen=True)
class Ack:
    """What the server says back: ``status`` is ``stored``, ``duplicate`` (seen before) or
    ``superseded`` (recorded in the history; a newer grade stays current)."""

    request_id: str
    status: str
    item_id: int
    grade: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "status": self.status,
            "item_id": self.item_id,
            "grade": self.grade,
        }


def _aware(moment: dt.datetime | None, now: dt.datetime) -> dt.datetime:
    if moment is None:
        return now
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return min(moment, now + MAX_CLOCK_SKEW)


def _check(request: GradeRequest) -> None:
    if not REQUEST_ID.match(request.request_id or ""):
        raise InputError(
            "a grade needs a request id of 8–64 letters, digits or -_.:",
            hint="the grading page makes one per keypress",
        )
    if request.seconds_on_item is not None and not 0 <= request.seconds_on_item < 1e7:
        raise InputError("seconds on item must be a non-negative number")


def record(session: Session, campaign: Campaign, user: User, request: GradeRequest) -> Ack:
    """Record one grade or skip in the caller's transaction (see the module's rules)."""
    _check(request)
    seen = session.scalar(sa.select(GradeEvent).where(GradeEvent.request_id == request.request_id))
    if seen is not None:
        if seen.user_id != user.id or seen.item_id != request.item_id:
            raise ConflictError("this request id was used for another grade")
        grade = key_of(campaign.levels, seen.value) if seen.value is not None else None
        return Ack(request.request_id, "duplicate", seen.item_id, grade)
    if campaign.closed:
        raise ConflictError(f"campaign {campaign.id} is closed", hint="ask an admin to reopen it")
    if not is_labeller(session, campaign, user):
        raise NotFoundError(f"campaign {campaign.id} has no items for {user.email}")
    item = session.get(CampaignItem, request.item_id)
    if item is None or item.campaign_id != campaign.id:
        raise NotFoundError(f"campaign {campaign.id} has no item {request.item_id}")
    entry = session.scalar(
        sa.select(QueueEntry).where(
            QueueEntry.campaign_id == campaign.id,
            QueueEntry.user_id == user.id,
            QueueEntry.item_id == item.id,
            QueueEntry.repeat == request.repeat,
        )
    )
    if entry is None:
        look = "second look at" if request.repeat else "look at"
        raise NotFoundError(f"no {look} item {item.id} in {user.email}'s queue")
    now = utcnow()
    given_at = _aware(request.given_at, now)
    value = None if request.grade is None else value_of(campaign.levels, request.grade)
    session.add(
        GradeEvent(
            request_id=request.request_id,
            campaign_id=campaign.id,
            item_id=item.id,
            user_id=user.id,
            repeat=request.repeat,
            value=value,
            given_at=given_at,
            received_at=now,
            seconds_on_item=request.seconds_on_item,
        )
    )
    if value is None:
        if entry.skipped_at is None:
            entry.skipped_at = given_at
        return Ack(request.request_id, "stored", item.id, None)
    current = session.scalar(
        sa.select(Grade).where(
            Grade.item_id == item.id, Grade.user_id == user.id, Grade.repeat == request.repeat
        )
    )
    status = "stored"
    if current is None:
        session.add(
            Grade(
                campaign_id=campaign.id,
                item_id=item.id,
                user_id=user.id,
                repeat=request.repeat,
                value=value,
                given_at=given_at,
                received_at=now,
                seconds_on_item=request.seconds_on_item,
                request_id=request.request_id,
                fingerprint=_job_fingerprint(session, item),
            )
        )
        annotation = ensure_grade_annotation(session, campaign, item.run_id, user)
        # In SQL, not Python: two requests of one labeller racing cannot lose a count.
        annotation.object_count = sa.func.coalesce(Annotation.object_count, 0) + 1
    elif _aware(current.given_at, now) <= given_at:
        current.value, current.given_at, current.received_at = value, given_at, now
        current.seconds_on_item = request.seconds_on_item
        current.request_id = request.request_id
        current.fingerprint = _job_fingerprint(session, item)
    else:
        status = "superseded"
    return Ack(request.request_id, status, item.id, key_of(campaign.levels, value))


def _job_fingerprint(session: Session, item: CampaignItem) -> str | None:
    """The fingerprint of the job as it is now: a grade given before a re-extraction that
    changed the job can then be told apart (``stale``)."""
    if item.class_average_id is None:
        return None
    job = session.get(Class2DJob, item.run_id)
    return job.fingerprint if job is not None else None


# One grade writer at a time per process on SQLite: its writers otherwise wait for the file
# lock in a sleep-and-poll loop (up to 100 ms a turn), served out of order, which is what
# made the slowest grades take seconds under 50 labellers. PostgreSQL locks rows itself.
_SQLITE_WRITER = threading.Lock()


def record_many(
    portal: Portal,
    campaign_id: int,
    user_id: int,
    requests: Sequence[GradeRequest],
    check: Callable[[Session, Campaign, User], object] | None = None,
) -> list[Ack | str]:
    """Record a batch from a browser's outbox, each in its own short transaction (one bad
    grade does not hold back the others). ``check(session, campaign, user)`` runs first in
    each transaction (the web layer's access rule); its refusal, like an unknown campaign or
    user, refuses the rest of the batch (raised). Each result is an :class:`Ack` or the
    grade's error as one line."""
    serial = _SQLITE_WRITER if portal.engine.dialect.name == "sqlite" else contextlib.nullcontext()
    results: list[Ack | str] = []
    for request in requests:
        for attempt in range(3):
            try:
                with serial, portal.transaction() as session:
                    campaign = get_campaign(session, campaign_id)
                    user = session.get(User, user_id)
                    if user is None:
                        raise NotFoundError(f"no user with id {user_id}")
                    if check is not None:
                        check(session, campaign, user)
                    outcome: Ack | str
                    try:
                        outcome = record(session, campaign, user, request)
                    except (InputError, NotFoundError, ConflictError) as err:
                        outcome = str(err)  # refused before anything was written
                results.append(outcome)
                break
            except IntegrityError:
                # Another request won a race for the same row (same request id, or the first
                # grade of this item): the retry sees its row and follows the rules above.
                if attempt == 2:
                    raise
    return results


def grade_rows(
    session: Session, campaign: Campaign, user: User | None = None, *, repeats: bool = True
) -> list[dict[str, Any]]:
    """Current grades of a campaign (or of one labeller), with who and when, for the API
    and exports. Callers decide who may see whose (see :mod:`cryocurate.grading.access`)."""
    query = (
        sa.select(Grade, User.email, CampaignItem, Class2DJob.fingerprint)
        .join(User, User.id == Grade.user_id)
        .join(CampaignItem, CampaignItem.id == Grade.item_id)
        .outerjoin(Class2DJob, Class2DJob.run_id == CampaignItem.run_id)
        .where(Grade.campaign_id == campaign.id)
        .order_by(Grade.item_id, User.email, Grade.repeat)
    )
    if user is not None:
        query = query.where(Grade.user_id == user.id)
    if not repeats:
        query = query.where(Grade.repeat.is_(False))
    return [
        {
            "item_id": grade.item_id,
            "run_id": item.run_id,
            "class_average_id": item.class_average_id,
            "tiltseries_id": item.tiltseries_id,
            "labeller": email,
            "grade": key_of(campaign.levels, grade.value),
            "value": grade.value,
            "repeat": grade.repeat,
            "given_at": grade.given_at,
            "received_at": grade.received_at,
            "seconds_on_item": grade.seconds_on_item,
            "stale": job_now is not None and grade.fingerprint != job_now,
        }
        for grade, email, item, job_now in session.execute(query)
    ]


def history(session: Session, campaign: Campaign, item_id: int, user: User) -> list[dict[str, Any]]:
    """Every grade and skip one labeller gave one item, oldest first."""
    events = session.scalars(
        sa.select(GradeEvent)
        .where(
            GradeEvent.campaign_id == campaign.id,
            GradeEvent.item_id == item_id,
            GradeEvent.user_id == user.id,
        )
        .order_by(GradeEvent.given_at, GradeEvent.id)
    )
    return [
        {
            "request_id": e.request_id,
            "grade": key_of(campaign.levels, e.value) if e.value is not None else None,
            "repeat": e.repeat,
            "given_at": e.given_at,
            "received_at": e.received_at,
        }
        for e in events
    ]
