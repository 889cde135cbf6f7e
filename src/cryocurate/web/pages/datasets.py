"""The Dataset Overview page (``/datasets/{id}`` and ``.json``): View All Info, runs, download.

The runs table shows the columns that fit the runs' kind (tilt-series quality and annotated
objects for tomography, classes, particles and the grading summary of
:mod:`cryocurate.grading.run_summary` for 2D classification)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from cryocurate.catalog.search import RUNS_PER_PAGE, dataset_overview
from cryocurate.errors import NotFoundError
from cryocurate.grading import access
from cryocurate.grading.run_summary import grading_summaries
from cryocurate.web.auth import current_user
from cryocurate.web.deps import DbInt, PortalDep
from cryocurate.web.pages.render import render

router = APIRouter(include_in_schema=False)


@router.get("/datasets/{dataset_id:int}", name="dataset_page")
@router.get("/datasets/{dataset_id:int}.json")
def dataset_page(
    request: Request, portal: PortalDep, dataset_id: DbInt, page: DbInt = 1
) -> Response:
    user = current_user(request)
    guards = access.annotation_guards(user)  # counts and objects of what this visitor sees
    with portal.transaction() as session:
        context = dataset_overview(session, dataset_id, max(1, page), RUNS_PER_PAGE, guards)
        class2d = [r.id for r in context["runs"] if r.kind == "class2d"] if context else []
        grading = grading_summaries(session, class2d, user)
    if context is None:
        raise NotFoundError(f"no dataset {dataset_id}")
    context["grading"] = {str(run_id): rows for run_id, rows in grading.items()}
    kinds = {r.kind for r in context["runs"]}
    context["columns"] = {"tomography": "tomography" in kinds, "class2d": "class2d" in kinds}
    base = str(request.base_url).rstrip("/")
    context["download"] = {
        "cli": f"cryocurate download ROOT dataset {dataset_id} ./downloads --layout v2",
        "python": (
            "from cryocurate.client import Client, Dataset\n\n"
            f'client = Client("{base}")\n'
            f"dataset = Dataset.get_by_id(client, {dataset_id})\n"
            'dataset.download_everything("./downloads", layout="v2")'
        ),
        "zip_url": f"/download/dataset/{dataset_id}.zip",
        "zip_v2_url": f"/download/dataset/{dataset_id}.zip?layout=v2",
        "manifest_url": f"/download/dataset/{dataset_id}.json",
        "curl": f"curl -o dataset-{dataset_id}.zip {base}/download/dataset/{dataset_id}.zip",
    }
    return render(request, "dataset.html", context)
