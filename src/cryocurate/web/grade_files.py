"""``GET /download/annotation/{id}.ndjson``: a grade annotation's current grades.

Grades are annotations of their run (one per labeller per run per campaign, see
:mod:`cryocurate.grading.annotations`), but unlike picks they have no file in the data tree:
grades change while a campaign runs, so the ndjson is written from the database as it is
sent (:func:`~cryocurate.grading.annotations.grades_ndjson`), in batches, inside one read
transaction so the file is one consistent moment.

Who may read it: the labeller whose grades they are, reviewers and admins (a labeller never
sees another labeller's grades, so nobody anchors on a colleague); anyone else logged in
gets 403. An anonymous script gets 401; an anonymous browser is sent to the login page. The
refusals are errors of the tree, answered by the web's error boundary in the API's envelope.
The campaign's consensus (no labeller) is for reviewers and admins while the campaign runs,
and for everyone once it is closed (the rule is :mod:`cryocurate.grading.access`'s).

A separate module rather than a route in :mod:`cryocurate.web.files`: that one serves the
public data tree, this one answers per user.
"""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from cryocurate.errors import AuthenticationError, ForbiddenError, NotFoundError
from cryocurate.grading import access
from cryocurate.grading.annotations import grade_annotation, grades_ndjson
from cryocurate.portal import Portal
from cryocurate.web.auth import current_user
from cryocurate.web.deps import DbInt, PortalDep

router = APIRouter()

LINES_PER_CHUNK = 2000


def _chunks(portal: Portal, annotation_id: int) -> Iterator[bytes]:
    with portal.transaction() as session:
        lines: list[str] = []
        for line in grades_ndjson(session, annotation_id):
            lines.append(line)
            if len(lines) >= LINES_PER_CHUNK:
                yield "".join(lines).encode()
                lines.clear()
        if lines:
            yield "".join(lines).encode()


@router.get(
    "/download/annotation/{annotation_id:int}.ndjson",
    name="download_grades",
    response_class=Response,
    responses={200: {"content": {"application/x-ndjson": {}}, "description": "One grade a line"}},
)
def download_grades(annotation_id: DbInt, request: Request, portal: PortalDep) -> Response:
    """The grades of one grade annotation as ndjson (one grade per line, in class order)."""
    user = current_user(request)
    with portal.transaction() as session:
        link = grade_annotation(session, annotation_id)
        if link is None:
            raise NotFoundError(f"annotation {annotation_id} holds no grades")
        allowed = access.sees_grade_annotation(user, link.user_id, link.campaign.closed)
    if not allowed and user is None:
        raise AuthenticationError("log in first")
    if not allowed:
        raise ForbiddenError("these grades are their labeller's")
    headers = {
        "Content-Disposition": f'attachment; filename="grades-annotation-{annotation_id}.ndjson"',
        "Cache-Control": "private, no-store",
    }
    return StreamingResponse(
        _chunks(portal, annotation_id), media_type="application/x-ndjson", headers=headers
    )
