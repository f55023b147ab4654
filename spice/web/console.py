"""The API console at /docs: Swagger UI over /openapi.json, its assets served by this
service from the `swagger-ui-py` package (no CDN). Public like /openapi.json; requests
sent from it carry the API key given under "Authorize"."""
from __future__ import annotations

import base64
import functools
import hashlib
import importlib.resources

from faust.web import Request, Response

from spice.web.auth import Access
from spice.web.http import ApiView, HttpError

ASSETS = {"swagger-ui-bundle.js": "application/javascript", "swagger-ui.css": "text/css",
          "favicon-32x32.png": "image/png"}
INIT = ('window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#console", '
        'deepLinking: true, persistAuthorization: false, displayOperationId: true, '
        'tryItOutEnabled: false});')
PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Spice Harvester API console</title>
<link rel="icon" href="/docs/assets/favicon-32x32.png">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="console"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script>{INIT}</script></body></html>
"""


@functools.lru_cache(maxsize=1)
def page_headers() -> tuple[tuple[str, str], ...]:
    """Only the bundle and the page's own script (by hash) run; requests go to this
    server only; the page is never framed."""
    digest = base64.b64encode(hashlib.sha256(INIT.encode()).digest()).decode()
    policy = (f"default-src 'none'; script-src 'self' 'sha256-{digest}'; "
              "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; "
              "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
    return (("Content-Security-Policy", policy), ("X-Frame-Options", "DENY"),
            ("Referrer-Policy", "no-referrer"))


@functools.lru_cache(maxsize=len(ASSETS))
def asset(name: str) -> bytes:
    return (importlib.resources.files("swagger_ui") / "static" / name).read_bytes()


class ConsolePage(ApiView):
    access = {"get": Access.PUBLIC}

    async def get(self, request: Request) -> Response:
        return self.html(PAGE, headers=dict(page_headers()))


class ConsoleAsset(ApiView):
    access = {"get": Access.PUBLIC}

    async def get(self, request: Request, name: str) -> Response:
        if name not in ASSETS:
            raise HttpError(404, f"no console asset '{name[:100]}'", field="name")
        return self.bytes(asset(name), content_type=ASSETS[name],
                          headers={"Cache-Control": "public, max-age=86400"})
