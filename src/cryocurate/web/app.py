"""The web application: a FastAPI app over one portal root.

Each page is built from one context (plain data from :mod:`cryocurate.catalog.queries`) that
is either rendered with Jinja2 or returned as JSON, so the page and the API cannot drift
apart. Files of the data tree are served as they are stored, under ``/files/`` (and
``/data/``), by one route (:mod:`cryocurate.web.files`); what a browser may do with each
response is set in one place (:mod:`cryocurate.web.headers`).
"""

from __future__ import annotations

import gc
import os
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from cryocurate import __version__
from cryocurate.portal import Portal
from cryocurate.web.api import router as api_router
from cryocurate.web.auth import install as install_auth
from cryocurate.web.docs import router as docs_router
from cryocurate.web.errors import install as install_errors
from cryocurate.web.files import router as files_router
from cryocurate.web.grade_files import router as grade_files_router
from cryocurate.web.grading_api import router as grading_api_router
from cryocurate.web.headers import SecurityHeaders
from cryocurate.web.limits import BodyLimit
from cryocurate.web.pages.accounts import router as accounts_router
from cryocurate.web.pages.browse import router as browse_router
from cryocurate.web.pages.campaign_admin import router as campaign_admin_router
from cryocurate.web.pages.campaign_agreement import router as campaign_agreement_router
from cryocurate.web.pages.datasets import router as datasets_router
from cryocurate.web.pages.depositions import router as depositions_router
from cryocurate.web.pages.grading import router as grading_pages_router
from cryocurate.web.pages.home import router as home_router
from cryocurate.web.pages.runs import router as runs_router
from cryocurate.web.pages.viewer import router as viewer_router
from cryocurate.web.tilt_images import router as tilt_images_router
from cryocurate.web.timing import ServerTiming


def create_app(root: str | os.PathLike[str]) -> FastAPI:
    """The app for the portal root at ``root`` (opened once; sessions per request)."""
    portal = Portal.open(root)
    # Our own /docs (served from the package, no CDN); no ReDoc.
    app = FastAPI(title="cryocurate portal", version=__version__, docs_url=None, redoc_url=None)
    app.state.portal = portal
    install_auth(app)  # sessions, API tokens, CSRF, private mode
    app.add_middleware(ServerTiming)
    app.add_middleware(BodyLimit)  # outside auth, which reads form bodies for their CSRF token
    install_errors(app)  # its last-resort middleware wraps all of the above
    app.add_middleware(SecurityHeaders)  # last added, outermost: every response has them,
    # the last resort's 500 included

    app.include_router(accounts_router)  # /login, /logout, /me, /invite/…, /admin/users
    app.include_router(api_router)
    app.include_router(grade_files_router)  # before files_router: its own suffix
    app.include_router(files_router)  # /files/ and /data/: one route for the data tree
    app.include_router(docs_router)
    app.include_router(grading_api_router)
    app.include_router(browse_router)
    app.include_router(campaign_admin_router)
    app.include_router(datasets_router)
    app.include_router(depositions_router)
    app.include_router(runs_router)
    app.include_router(viewer_router)
    app.include_router(home_router)
    app.include_router(tilt_images_router)
    app.include_router(grading_pages_router)
    app.include_router(campaign_agreement_router)
    portal.data_dir.mkdir(exist_ok=True)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    return app


def app_from_environment() -> FastAPI:
    """Factory for ``uvicorn --factory``: the root comes from ``CRYOCURATE_ROOT``."""
    app = create_app(os.environ["CRYOCURATE_ROOT"])
    # The app's start-up objects (modules, models, templates) live as long as the process:
    # leaving them out of the collector's full passes turns ~100 ms pauses into ~1 ms ones.
    gc.freeze()
    return app
