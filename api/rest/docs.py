"""Interactive API docs that work offline: Swagger UI served from the ``swagger-ui-bundle-v2`` package.

Litestar's stock render plugins load their JavaScript from a CDN, which leaves a blank page on machines without
internet access; this one serves the same Swagger UI files from the installed package under /schema/assets/.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import TYPE_CHECKING, Any

from litestar import Response, get
from litestar.openapi.plugins import SwaggerRenderPlugin

from api.rest.problems import ProblemError

if TYPE_CHECKING:
    from litestar import Request
    from litestar.router import Router

ASSETS = ("swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css", "favicon-32x32.png")
_ASSET_PREFIX = "/schema/assets/"


def swagger_ui_dir() -> Path | None:
    """Return the folder of the installed Swagger UI files, or None when the package is missing."""
    try:
        import swagger_ui_bundle
    except ImportError:
        return None
    return Path(str(swagger_ui_bundle.swagger_ui_path))


@get("/assets/{name:str}", include_in_schema=False, sync_to_thread=False)
def swagger_asset(name: str) -> Response[bytes]:
    """Serve one Swagger UI file from the installed package."""
    folder = swagger_ui_dir()
    if folder is None or name not in ASSETS:
        raise ProblemError("not-found", f"no docs asset {name!r}")
    media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return Response((folder / name).read_bytes(), media_type=media_type, headers={"Cache-Control": "max-age=3600"})


class OfflineSwaggerPlugin(SwaggerRenderPlugin):
    """Swagger UI at /schema and /schema/swagger with every file served locally."""

    def __init__(self) -> None:
        super().__init__(
            path=["/", "/swagger"],
            js_url=_ASSET_PREFIX + "swagger-ui-bundle.js",
            css_url=_ASSET_PREFIX + "swagger-ui.css",
            standalone_preset_js_url=_ASSET_PREFIX + "swagger-ui-standalone-preset.js",
            favicon=f"<link rel='icon' type='image/png' href='{_ASSET_PREFIX}favicon-32x32.png'>",
        )

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        """Render Swagger UI, or a plain page pointing at the JSON schema when the UI package is missing."""
        if swagger_ui_dir() is None:
            return (
                b"<!DOCTYPE html><html><body><p>Interactive docs need the <code>swagger-ui-bundle-v2</code> "
                b"package (<code>pip install swagger-ui-bundle-v2</code>). The schema is at "
                b"<a href='/schema/openapi.json'>/schema/openapi.json</a>.</p></body></html>"
            )
        return super().render(request, openapi_schema)

    def receive_router(self, router: Router) -> None:
        """Register the asset route next to the UI (the stock OAuth2 redirect page is not needed for API keys)."""
        router.register(swagger_asset)
