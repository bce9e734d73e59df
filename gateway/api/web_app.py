"""The web app at /app: the files `make` builds into `web/dist`, served by the gateway itself
(no second server). A checkout whose app was not built answers a structured error."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

MOUNT = "/app"


class WebAppFiles:
    """`StaticFiles` over the built app, or a 503 naming the build step when there is none."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._files: StaticFiles | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._files is None and (self.directory / "index.html").is_file():
            self._files = StaticFiles(directory=self.directory, html=True)
        if self._files is None:
            response = JSONResponse(
                {
                    "error": {
                        "code": "web_app_not_built",
                        "message": f"no web app in {self.directory}: run `make up` "
                        "(or `make web`) to build it",
                        "field": None,
                    }
                },
                status_code=503,
            )
            await response(scope, receive, send)
            return
        await self._files(scope, receive, send)


def install_web_app(app: FastAPI, directory: Path) -> None:
    app.mount(MOUNT, WebAppFiles(directory), name="web-app")

    @app.get(MOUNT, include_in_schema=False)
    async def web_app_root() -> RedirectResponse:
        return RedirectResponse(f"{MOUNT}/")
