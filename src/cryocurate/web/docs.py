"""``GET /docs``: the API's reference (Swagger UI), served from the package, not a CDN.

FastAPI's own ``/docs`` page loads Swagger UI from a CDN and starts it with an inline
script: without internet it is blank (``SwaggerUIBundle is not defined``), and the inline
script is what the page Content-Security-Policy (:mod:`cryocurate.web.headers`) forbids. This
page is one of ours instead: the portal's header, Swagger UI's two files from the pinned
``swagger-ui-bundle-v2`` package (``/docs/assets/<version>/…``, cached for good since the
version is in the path), and ``static/docs.js`` to start it on ``/openapi.json``. ReDoc is
turned off in :func:`cryocurate.web.app.create_app` (one reference page is enough).
"""

from __future__ import annotations

from pathlib import Path

import swagger_ui_bundle
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, Response

from cryocurate.web.pages.render import render

router = APIRouter(include_in_schema=False)

SWAGGER_DIR = Path(str(swagger_ui_bundle.swagger_ui_path))
SWAGGER_VERSION = SWAGGER_DIR.name.removeprefix("swagger-ui-")
# The only files of the package the page needs; nothing else in its folder is served (its
# index.html would start the Petstore demo from the internet).
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
}


@router.get("/docs", name="api_docs")
def api_docs(request: Request) -> Response:
    """The interactive API reference."""
    assets = f"/docs/assets/{SWAGGER_VERSION}"
    context = {
        "swagger_js": f"{assets}/swagger-ui-bundle.js",
        "swagger_css": f"{assets}/swagger-ui.css",
        "docs_config": {"url": request.app.openapi_url or "/openapi.json"},
    }
    return render(request, "docs.html", context)


@router.get("/docs/assets/{version}/{name}", name="api_docs_asset")
def api_docs_asset(version: str, name: str) -> Response:
    """One of Swagger UI's files, from the installed package."""
    if version != SWAGGER_VERSION or name not in ASSETS:
        raise HTTPException(status_code=404, detail="no such file")
    return FileResponse(
        SWAGGER_DIR / name,
        media_type=ASSETS[name],
        headers={"Cache-Control": "public, max-age=31536000, immutable"},
    )


__all__ = ["router"]
