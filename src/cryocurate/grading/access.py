"""Who may see and change what in grading, in one place for the web app and the API.

* A labeller sees the campaigns they grade in, and only their own grades.
* A reviewer sees every campaign and everyone's grades (to settle disagreements).
* An admin sees everything and manages campaigns.
* Progress counts are for everyone who sees the campaign, but per-labeller rows only for
  reviewers and admins: a labeller sees their own row, without the repeat counts.
* Nobody changes anyone else's grades: a grade is always recorded for the user who sends it.

Refusals of things a user may not even know about are "not found", so ids do not leak.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from cryocurate.accounts import get_user
from cryocurate.catalog.models import Campaign, Role, User
from cryocurate.errors import ForbiddenError, NotFoundError
from cryocurate.grading.campaigns import get_campaign, is_labeller
from cryocurate.grading.progress import campaign_progress

__all__ = [
    "ForbiddenError",
    "check_grades_of",
    "grades_owner",
    "sees_all",
    "visible_campaign",
    "visible_progress",
]

# A labeller's repeat counts would tell them that some items come back: repeats are unannounced.
_REPEAT_FIELDS = ("repeats", "repeats_graded")


def sees_all(user: User) -> bool:
    return user.role in (Role.admin, Role.reviewer)


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
