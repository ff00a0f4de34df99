"""Who a request belongs to: a session cookie per browser, and a session's files served only to it.

The first page load gets a random token in an HttpOnly cookie that outlives the tab (as long as a
session's files do), so a reload or a reopened tab finds the same session. The session's folder is
named by a hash of the token: a file URL does not reveal the token, and nobody picks a folder's
name. Every file request into the share folder is checked: a session's files go only to the
browser holding its cookie (403 for anyone else); the app's shared files (the director previews)
go to everyone. A client without the cookie (``gradio_client``) gets a session of its own per
connection, and its files are not served over HTTP.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from pathlib import Path
from urllib.parse import unquote

COOKIE = "dimensionx_session"
TOKEN = re.compile(r"[A-Za-z0-9_-]{40,64}")
FILE_ROUTE = re.compile(r"/file=(.+)$")  # Gradio's file route: /gradio_api/file=<server path>
PAGE_PATHS = ("", "/")  # the page itself: where a browser without a session gets its cookie


def folder_name(identity: str) -> str:
    """The session folder of a cookie token (or an API connection): 32 hex digits of its SHA-256."""
    return hashlib.sha256(identity.encode()).hexdigest()[:32]


def session_of(request) -> str:
    """The session folder name of a Gradio request: from its cookie, else from its connection."""
    raw = getattr(request, "request", None)  # the underlying Starlette request (none for a direct call)
    token = token_in(raw.headers.get("cookie", "")) if raw is not None else None
    if token:
        return folder_name(token)
    return folder_name(f"connection:{request.session_hash}")


class SessionFiles:
    """ASGI middleware: a session cookie for each new browser, and file requests checked against it."""

    def __init__(self, app, root: Path, public: tuple[str, ...], max_age_seconds: int):
        self.app = app
        self.root = root  # the share folder (resolved)
        self.public = public  # names of folders in root that every session may read
        self.max_age = max_age_seconds

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        token = cookie(scope)
        file = FILE_ROUTE.search(scope["path"])
        if file and not self.allowed(Path(unquote(file.group(1))), token):
            return await refuse(send)
        if token or scope["path"] not in PAGE_PATHS:
            return await self.app(scope, receive, send)
        header = (f"{COOKIE}={secrets.token_urlsafe(32)}; Path=/; Max-Age={self.max_age}; HttpOnly; SameSite=Strict").encode()

        async def with_cookie(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", header)]}
            await send(message)

        await self.app(scope, receive, with_cookie)

    def allowed(self, path: Path, token: str | None) -> bool:
        """A file outside the share folder is Gradio's to judge; inside it, only the owner's or a public folder's."""
        path = Path("/", path).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            return True
        owner = path.relative_to(self.root).parts[0]
        return owner in self.public or (token is not None and owner == folder_name(token))


def cookie(scope) -> str | None:
    """The ASGI request's session token, if it carries a well-formed one."""
    return next(filter(None, (token_in(value.decode("latin-1")) for name, value in scope.get("headers", []) if name == b"cookie")), None)


def token_in(header: str) -> str | None:
    """The session token in a ``Cookie`` header, if it holds a well-formed one."""
    for part in header.split(";"):
        key, _, token = part.strip().partition("=")
        if key == COOKIE and TOKEN.fullmatch(token):
            return token
    return None


async def refuse(send) -> None:
    body = b"this file belongs to another session"
    await send({"type": "http.response.start", "status": 403,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
