"""The web application: a FastAPI app over one portal root.

Each page is built from one context (plain data from :mod:`cryocurate.catalog.queries`) that
is either rendered with Jinja2 or returned as JSON, so the page and the API cannot drift
apart. Files of the data tree are served as they are stored, under ``/data/``.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from cryocurate import __version__
from cryocurate.catalog.queries import class_averages, dataset_summaries
from cryocurate.portal import Portal
from cryocurate.store import layout
from cryocurate.web.api import router as api_router
from cryocurate.web.files import router as files_router
from cryocurate.web.pages.render import TEMPLATES


def _index_context(portal: Portal) -> dict[str, Any]:
    with portal.transaction() as session:
        datasets = []
        for summary in dataset_summaries(session):
            runs = []
            for run in summary.runs:
                classes = [
                    {
                        "class_index": ca.class_index,
                        "resolution_a": ca.resolution_a,
                        "particle_count": ca.particle_count,
                        "class_fraction": ca.class_fraction,
                        "image_url": f"/data/{summary.id}/{run.name}/"
                        + layout.class_image_relpath(ca.class_index),
                    }
                    for ca in class_averages(session, run.id)
                ]
                runs.append({**asdict(run), "classes": classes})
            datasets.append({**asdict(summary), "runs": runs})
    return {"datasets": datasets, "version": __version__}


def create_app(root: str | os.PathLike[str]) -> FastAPI:
    """The app for the portal root at ``root`` (opened once; sessions per request)."""
    portal = Portal.open(root)
    app = FastAPI(title="cryocurate portal", version=__version__)
    app.state.portal = portal

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request) -> HTMLResponse:
        return TEMPLATES.TemplateResponse(request, "index.html", _index_context(portal))

    @app.get("/index.json")
    def index_json() -> JSONResponse:
        return JSONResponse(_index_context(portal))

    app.include_router(api_router)
    app.include_router(files_router)
    portal.data_dir.mkdir(exist_ok=True)
    app.mount("/data", StaticFiles(directory=portal.data_dir), name="data")
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    return app


def app_from_environment() -> FastAPI:
    """Factory for ``uvicorn --factory``: the root comes from ``CRYOCURATE_ROOT``."""
    return create_app(os.environ["CRYOCURATE_ROOT"])
