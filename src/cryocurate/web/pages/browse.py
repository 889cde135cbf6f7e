"""The Browse Datasets page (``/``, ``/.json``, ``/index.json``): table, filters, search.

Everyone gets the same page for the same query: its counts, objects and search matches are of
the annotations an anonymous visitor may see (:func:`cryocurate.grading.access.annotation_guards`
of nobody), so the cached facet summary is one for all and a reviewer's view of unpublished
grades stays on the run pages and the API, which answer per user."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from cryocurate.catalog.search import BrowseQuery, browse
from cryocurate.grading import access
from cryocurate.portal import Portal
from cryocurate.web.deps import PortalDep
from cryocurate.web.pages.render import render

router = APIRouter(include_in_schema=False)

FACET_TITLES = {
    "object": "Annotated object",
    "method_type": "Annotation method type",
    "organism": "Organism",
    "sample_type": "Sample type",
    "kind": "Kind of run",
    "microscope": "Microscope",
    "camera": "Camera",
    "quality": "Tilt-series quality",
}


def browse_context(portal: Portal, query: BrowseQuery) -> dict[str, Any]:
    """The page's data: the query as given, the result and the links it needs."""
    with portal.transaction() as session:
        result = browse(session, query, access.annotation_guards(None))

    def link(**changes: Any) -> str:
        params = query.params(**changes)
        return "/" + (f"?{urlencode(params)}" if params else "")

    return {
        "query": query,
        "result": result,
        "datasets": result.datasets,
        "facet_titles": FACET_TITLES,
        "links": {
            "prev": link(page=result.page - 1) if result.page > 1 else None,
            "next": link(page=result.page + 1) if result.page < result.pages else None,
            "clear": "/",
        },
    }


@router.get("/", name="browse")
@router.get("/.json")
@router.get("/index.json")
def browse_page(request: Request, portal: PortalDep) -> Response:
    """A bad filter value is an InputError: the error boundary answers it (400, with a way
    back), page or JSON alike."""
    query = BrowseQuery.from_params(request.query_params.multi_items())
    return render(request, "browse.html", browse_context(portal, query))
