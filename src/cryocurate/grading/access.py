"""Who may see and change what in grading, in one place for the web app and the API.

* A labeller sees the campaigns they grade in, and only their own grades.
* A reviewer sees every campaign and everyone's grades (to settle disagreements).
* An admin sees everything and manages campaigns.
* Progress counts are for everyone who sees the campaign, but per-labeller rows only for
  reviewers and admins: a labeller sees their own row, without the repeat counts.
* Nobody changes anyone else's grades: a grade is always recorded for the user who sends it.
* Grade annotations (grades as portal annotations, :mod:`cryocurate.grading.annotations`):
  a labeller's grades of a run are seen by that labeller, reviewers and admins; a campaign's
  consensus by reviewers and admins while the campaign runs, and by everyone, anonymous
  visitors included, once it is closed (its result is then published like any annotation).
  Every route that lists annotations (the JSON API and its relationships, run, dataset and
  deposition pages, the viewer, the ndjson, zip and manifest downloads, ``/files/``) asks
  :func:`annotation_guards` / :func:`sees_grade_annotation`; the Browse page's facets use
  ``annotation_guards(None)`` for everyone (one cached summary, what anyone may see).

Refusals of things a user may not even know about are "not found", so ids do not leak.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from cryocurate.accounts import get_user
from cryocurate.catalog.models import (
    Annotation,
    AnnotationAuthor,
    AnnotationFile,
    AnnotationShape,
    Campaign,
    GradeAnnotation,
    Role,
    User,
)
from cryocurate.errors import ForbiddenError, NotFoundError
from cryocurate.grading.campaigns import get_campaign, is_labeller
from cryocurate.grading.progress import campaign_progress

__all__ = [
    "ForbiddenError",
    "annotation_guards",
    "check_grades_of",
    "grades_owner",
    "hidden_grade_annotations",
    "sees_all",
    "sees_grade_annotation",
    "visible_campaign",
    "visible_grade_links",
    "visible_progress",
]

# A labeller's repeat counts would tell them that some items come back: repeats are unannounced.
_REPEAT_FIELDS = ("repeats", "repeats_graded")


def sees_all(user: User | None) -> bool:
    return user is not None and user.role in (Role.admin, Role.reviewer)


def sees_grade_annotation(user: User | None, owner_id: int | None, campaign_closed: bool) -> bool:
    """Whether ``user`` (None: anonymous) may see a grade annotation owned by ``owner_id``
    (None: the consensus) of a campaign that is (not) closed: the module's rule, in Python;
    :func:`hidden_grade_annotations` is the same rule in SQL."""
    if sees_all(user):
        return True
    if owner_id is None:
        return campaign_closed
    return user is not None and owner_id == user.id


def hidden_grade_annotations(user: User | None) -> sa.Select[Any] | None:
    """The ids of the grade annotations ``user`` may not see, as a subquery (None: they see
    them all)."""
    if sees_all(user):
        return None
    visible = sa.and_(GradeAnnotation.user_id.is_(None), Campaign.closed.is_(True))
    if user is not None:
        # Not just ``user_id == user.id``: on a consensus (user_id NULL) that is NULL, and
        # NOT(FALSE OR NULL) is NULL, so a running campaign's consensus was not hidden.
        own = sa.and_(GradeAnnotation.user_id.is_not(None), GradeAnnotation.user_id == user.id)
        visible = sa.or_(visible, own)
    return (
        sa.select(GradeAnnotation.annotation_id)
        .join(Campaign, Campaign.id == GradeAnnotation.campaign_id)
        .where(sa.not_(visible))
    )


def annotation_guards(user: User | None) -> dict[str, ColumnElement[bool]]:
    """For :mod:`cryocurate.catalog.filters`: per entity (by plural), the condition its rows
    must meet for ``user``, applied to searches, relationship filters and includes alike,
    so no path through the API reaches a grade annotation ``user`` may not see, nor its
    authors (the labellers' names)."""
    hidden = hidden_grade_annotations(user)
    if hidden is None:
        return {}
    return {
        "annotations": Annotation.id.not_in(hidden),
        "annotation_authors": AnnotationAuthor.annotation_id.not_in(hidden),
        "annotation_shapes": AnnotationShape.annotation_id.not_in(hidden),
        "annotation_files": AnnotationFile.annotation_shape_id.not_in(
            sa.select(AnnotationShape.id).where(AnnotationShape.annotation_id.in_(hidden))
        ),
    }


def visible_grade_links(
    session: Session, links: dict[int, dict[str, Any]], user: User | None
) -> tuple[dict[int, dict[str, Any]], set[int]]:
    """A run's grade annotations (from :func:`~cryocurate.grading.annotations.
    grade_annotations_of_run`) split into those ``user`` sees and the ids of the others."""
    if sees_all(user) or not links:
        return links, set()
    campaigns = sa.select(Campaign.id, Campaign.closed).where(
        Campaign.id.in_(sorted({row["campaign_id"] for row in links.values()}))
    )
    closed = {cid: bool(is_closed) for cid, is_closed in session.execute(campaigns)}
    shown = {
        aid: row
        for aid, row in links.items()
        if sees_grade_annotation(user, row["user_id"], bool(closed.get(row["campaign_id"])))
    }
    return shown, set(links) - set(shown)


def visible_campaign(session: Session, campaign_id: int, user: User) -> Campaign:
    """The campaign if ``user`` may see it, else NotFoundError (as if it did not exist)."""
    campaign = get_campaign(session, campaign_id)
    if not sees_all(user) and not is_labeller(session, campaign, user):
        raise NotFoundError(f"no campaign with id {campaign_id}")
    return campaign


def check_grades_of(user: User, labeller: User) -> None:
    """Refuse a labeller reading someone else's grades."""
    if labeller.id != user.id and not sees_all(user):
        raise ForbiddenError("labellers see only their own grades")


def grades_owner(session: Session, user: User, email: str | None) -> User:
    """Whose grades ``user`` asks for with ``?labeller=email`` (None: their own). A labeller
    naming anyone else is refused *before* the email is looked up, so the answer is the same
    for an address with an account and one without (no enumeration of accounts)."""
    if email is None:
        return user
    if not sees_all(user):
        if email.strip().lower() != user.email:
            raise ForbiddenError("labellers see only their own grades")
        return user
    return get_user(session, email)


def visible_progress(session: Session, campaign: Campaign, user: User) -> dict[str, Any]:
    """The campaign's progress as ``user`` may see it (see the module's rules)."""
    progress = campaign_progress(session, campaign)
    if not sees_all(user):
        progress["per_labeller"] = [
            {k: v for k, v in row.items() if k not in _REPEAT_FIELDS}
            for row in progress["per_labeller"]
            if row["user_id"] == user.id
        ]
    return progress
