"""The HTTP server: our own FastAPI app, with the Gradio Blocks mounted on it.

The FastAPI app, not Gradio, owns what a browser trusts:
- **CORS**: Starlette's `CORSMiddleware` with `app.allowed_origins` (empty by default: no other origin may read a
  response). Its presence makes Gradio's own CORS middleware stand down; that one reflects any `Origin` with
  credentials once the Host is not localhost (gradio-app/gradio #10276).
- **Cookies**: Gradio sets its login cookie `SameSite=None`; `Guard` rewrites it to `SameSite=Lax`, so no other
  site's page sends it along with its requests.
- **Headers**: a Content-Security-Policy that keeps model output inert: images only from this server (a reply
  cannot smuggle chat text out through an image URL), forms submit only here, no plugins, no framing by other
  sites; and no Referer leaves the page (Gradio puts session hashes in URLs).
- **Same-origin writes**: a request that could change anything (any method but GET, HEAD and OPTIONS) from
  another site's page is refused on every route (`SameOriginWrites`), so no page elsewhere can sign a visitor in to
  an account of its choosing, out, or act as them.
- **Guard** (with logins): every route needs a login except the few the login page itself uses (`PUBLIC`) and
  the OpenAI-compatible API (`/v1`, which needs an API key instead: backend/api/router.py); a Gradio session hash or
  event id belongs to the login that used it first, and no other login (or anonymous caller) may read, cancel or
  join it (webui/session_guard.py: read as Gradio reads it; shared by replicas through Redis); request bodies
  are bounded.
- **Sign-out** only by a POST from this site's own pages: `GET /logout` signs nobody out (an image in a reply, or
  another site, could make the browser ask for it); it answers a page with a Sign out button. A page of the app
  signs out with `fetch("logout", {method: "POST"})` (then loads `./`, the login page), or a
  `<form method="post" action="logout">`; Gradio's own sign-out runs then, ending every session of the login (on
  every replica). `?all_session=false` ends only this browser's.
- **Connections** (webui/connections.py): a request's head must be complete within seconds, a body must not stall,
  and one address may hold only so many connections.
- **Uploads** (`UploadQuota`, webui/uploads.py): counted per visitor, the upload folder capped and swept.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import urlsplit

import gradio as gr
import uvicorn
from fastapi import FastAPI, HTTPException
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from backend import (
    Backend,
    LoginRefusedError,
    SessionOwners,
    SharedSessions,
    Users,
    VisitorLimits,
    gateway_router,
)

from .app import build_app, visitor_limits
from .chat.page_js import PAGE_JS
from .connections import ConnectionLimits, http_protocol
from .session_guard import NOT_YOURS, Refusal, SessionRoutes, bind_events, read_request
from .style import CSS
from .uploads import UPLOAD_PATHS, UploadQuota

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Reachable without a login: the login page and what it loads. Everything else answers 401 to a stranger, including
# Gradio's routes that do not check a login themselves (cancel, heartbeat, media streams).
PUBLIC_PATHS = frozenset(
    {
        "/",
        "/login",
        "/login/",
        "/logout",
        "/favicon.ico",
        "/manifest.json",
        "/robots.txt",
        "/theme.css",
        "/gradio_api/theme.css",
        "/gradio_api/login_check",
        "/gradio_api/login_check/",
        "/gradio_api/app_id",
        "/gradio_api/app_id/",
        "/gradio_api/startup-events",
    }
)
PUBLIC_PREFIXES = ("/assets/", "/static/", "/svelte/", "/pwa_icon")
API_PREFIX = "/v1/"  # answered by the API, which checks its own keys
# Request bodies other than uploads (which Gradio bounds by `max_file_size`): a chat turn with its history fits
# many times over; a forged 50 MB "message" does not get parsed.
MAX_BODY_BYTES = 16_000_000
LOGIN_PATHS = ("/login", "/login/")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})  # what a request from another site's page may use
SIGN_OUT_PAGE = (
    '<!doctype html><html lang="en"><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
    '<title>Sign out</title><body style="font-family: sans-serif; margin: 3em auto; max-width: 30em">'
    '<form method="post" action="logout"><p>Sign out of Switchboard on every device?</p>'
    '<button type="submit">Sign out</button></form></body></html>'
)

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "img-src 'self' data: blob:",
        "media-src 'self' data: blob:",
        "form-action 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "frame-ancestors 'self'",
    ]
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
]


def create_server(backend: Backend, *, users: Users | None = None, exposed: bool = False) -> FastAPI:
    """The whole web app: the Blocks UI at `/` behind our CORS policy, headers and guard.

    `users` turns on the login page; `exposed` (a share link or a non-loopback address) turns on per-visitor
    limits even without logins."""
    settings = backend.settings.app
    # One allowance per visitor: the page and the API count against the same limits.
    limits = visitor_limits(backend, exposed=exposed or users is not None or backend.settings.auth.enabled)
    blocks = build_app(backend, exposed=exposed, limits=limits)
    # What `launch()` would set: Gradio's queue runs at most max_threads events at once, all listeners together
    # (default 40), which would cap replies below app.concurrency; and Gradio keeps about 150 KB for every
    # session until this many newer ones exist (the default 10,000 lets memory grow by 1.5 GB).
    blocks.max_threads = max(40, 4 * settings.concurrency)
    blocks._queue.max_thread_count = blocks.max_threads
    blocks.state_session_capacity = settings.max_sessions

    server = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    # A reply still being generated when the server stops is stored with its text so far, marked interrupted.
    server.router.on_shutdown.append(backend.replies.aclose)
    # With replicas (Redis): Stop from other replicas, and the sweep for replies of replicas that died.
    server.router.on_startup.append(backend.replies.start_relay)
    _follow_users_file(server, users)
    # Before the UI's mount at "/", which would take every path.
    server.include_router(api_router(backend, users=users, exposed=exposed, limits=limits))
    gr.mount_gradio_app(
        server,
        blocks,
        path="/",
        auth=_login_check(users) if users else None,
        auth_message="Switchboard: sign in to see your conversations." if users else None,
        footer_links=["api"],
        run_history=False,  # conversations live on the server, per user; not in each browser's storage
        show_error=True,
        max_file_size=settings.max_upload_bytes,
        css=CSS,
        js=PAGE_JS,
        allowed_paths=[],
    )
    gradio_app = server.routes[-1].app  # type: ignore[attr-defined]  # the Mount just added
    owners = SessionOwners()
    if users is not None:
        # A session signs in only a login that is still active. With replicas, a sign-in holds on all of them (a
        # visitor moved off a replica that went away stays signed in), and so does whose each Gradio session is.
        sessions = backend.sessions(users)
        gradio_app.tokens = sessions
        if isinstance(sessions, SharedSessions):
            gradio_app.cookie_id = sessions.cookie_id()
        owners = backend.session_owners()
        server.router.on_shutdown.append(owners.aclose)
        bind_events(blocks._queue, owners)
    # Gradio checks that a file named in an event's input was uploaded by a visitor (not any server path) only
    # once its Blocks "have launched", which `launch()` marks and mounting does not.
    blocks.has_launched = True
    server.add_middleware(SignOutByPost)
    server.add_middleware(UploadQuota, gradio_app=gradio_app, backend=backend, exposed=exposed or users is not None)
    server.add_middleware(Guard, gradio_app=gradio_app, logins=users is not None, owners=owners)
    if users is not None:
        server.add_middleware(LoginAddress)
    _outer_layers(server, backend)
    return server


def create_api_server(backend: Backend, *, users: Users | None = None, exposed: bool = False) -> FastAPI:
    """The OpenAI-compatible API alone (`switchboard serve`): no UI, the same keys, limits and headers."""
    server = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    server.router.on_startup.append(backend.replies.start_relay)  # replicas: their presence counts shared limits
    server.router.on_shutdown.append(backend.replies.aclose)
    _follow_users_file(server, users)
    server.include_router(api_router(backend, users=users, exposed=exposed))
    server.add_middleware(Guard, gradio_app=None, logins=False)  # (bounded bodies; the API checks its keys)
    _outer_layers(server, backend)
    return server


def api_router(backend: Backend, *, users: Users | None, exposed: bool, limits: VisitorLimits | None = None):
    """`/v1`: with logins, every request needs an API key of an active login; reachable from other machines
    without logins, it answers only 403 (as the UI would not be served). `limits`: the page's, when there is one."""
    if limits is None:
        limits = visitor_limits(backend, exposed=exposed or users is not None)
    return gateway_router(backend, limits, logins=users, served=users is not None or not exposed)


def _follow_users_file(server: FastAPI, users: Users | None) -> None:
    """Logins follow the users file while the server runs: a login taken out of it loses its sessions and its API
    keys within about a second (see Users.follow_file)."""
    if users is None:
        return
    following: list[asyncio.Task[None]] = []

    async def start() -> None:
        following.append(asyncio.create_task(users.follow_file(), name="switchboard-users-file"))

    async def stop() -> None:
        for task in following:
            task.cancel()

    server.router.on_startup.append(start)
    server.router.on_shutdown.append(stop)


# The address of the sign-in being handled: Gradio hands its login check only the name and password.
_SIGNING_IN_FROM: ContextVar[str] = ContextVar("signing_in_from", default="unknown")


def _login_check(users: Users) -> Callable[[str, str], Awaitable[bool]]:
    """Gradio's `auth`: `users.verify` with the client's address; a sign-in refused unchecked (too many failures
    or sign-ins from its address, a full line) is a 429 with its sentence, not Gradio's "Incorrect credentials"."""

    async def check(username: str, password: str) -> bool:
        try:
            return await users.verify(username, password, _SIGNING_IN_FROM.get())
        except LoginRefusedError as error:
            wait = {"retry-after": str(math.ceil(error.retry_after or 1))}
            raise HTTPException(429, detail=error.user_message(), headers=wait) from None

    return check


class LoginAddress:
    """Tells the login check who signs in: the client's address, after ProxyHeadersMiddleware put there what a
    trusted proxy forwards for (this runs inside it), as every per-address count of the app has it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in ("/login", "/login/"):
            client = scope.get("client")
            _SIGNING_IN_FROM.set(client[0] if client else "unknown")
        await self.app(scope, receive, send)


def _outer_layers(server: FastAPI, backend: Backend) -> None:
    """Outermost last: headers on every answer, then the visitor's address, then CORS (a preflight carries no
    login), then the refusal of other sites' writes. And how the server holds its connections (`serve`)."""
    settings = backend.settings.app
    server.add_middleware(SameOriginWrites, allowed_origins=settings.allowed_origins)
    server.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.allowed_origins),
        allow_credentials=True,
        allow_methods=["GET", "POST"],
        allow_headers=["*"],
    )
    if settings.trusted_proxies:
        server.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.trusted_proxies))
    server.add_middleware(SecurityHeaders)
    server.state.connection_limits = ConnectionLimits(uncapped=tuple(settings.trusted_proxies))


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


class SameOriginWrites:
    """Refuses (403) a request from another site's page that could change something: any method but GET, HEAD and
    OPTIONS, on every route, `/login` and `/logout` included, unless its origin is in `app.allowed_origins`.

    Browsers say where a request comes from: `Sec-Fetch-Site` (every current browser), else `Origin`, compared
    with the Host the request was sent to. A request with neither (curl, gradio_client, the OpenAI SDKs) is no
    other site's page, and passes: cookies only make a cross-site request dangerous when a browser adds them."""

    def __init__(self, app: ASGIApp, allowed_origins: list[str]) -> None:
        self.app = app
        self.allowed_origins = frozenset(allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS and self._cross_site(Headers(scope=scope)):
            sentence = "Refused: this request was sent by another site's page."
            await _refuse(send, 403, sentence, api=scope["path"].startswith(API_PREFIX))
            return
        await self.app(scope, receive, send)

    def _cross_site(self, headers: Headers) -> bool:
        origin = headers.get("origin")
        if origin is not None and origin in self.allowed_origins:
            return False
        fetch_site = headers.get("sec-fetch-site")
        if fetch_site is not None:
            return fetch_site not in ("same-origin", "none")  # ("none": typed or bookmarked by the visitor)
        if origin is None:
            return False
        return urlsplit(origin).netloc.lower() != headers.get("host", "").lower()  # ("null" has no host)


class SignOutByPost:
    """`POST /logout` runs Gradio's own sign-out (a GET route of Gradio's); `GET /logout` only answers a page whose
    button sends that POST: an image or a link anywhere (a reply, an imported chat, another site) signs no one
    out, and SameOriginWrites refuses other sites' POSTs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/logout":
            await self.app(scope, receive, send)
        elif scope["method"] == "POST":
            await self.app({**scope, "method": "GET"}, receive, send)
        else:
            await HTMLResponse(SIGN_OUT_PAGE, headers={"cache-control": "no-store"})(scope, receive, send)


class Guard:
    """Logins on every route but PUBLIC ones, session hashes bound to their login, bounded bodies, Lax cookies."""

    def __init__(self, app: ASGIApp, gradio_app: Any, logins: bool, owners: SessionOwners | None = None) -> None:
        self.app = app
        self.gradio = gradio_app
        self.logins = logins
        self.owners = owners or SessionOwners()
        self.session_routes = SessionRoutes(gradio_app) if gradio_app is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        body: bytes | None = None  # (read here, but for uploads, which Gradio bounds and streams to disk itself)
        if scope["method"] == "POST" and path not in UPLOAD_PATHS:
            body = await _read_body(receive, MAX_BODY_BYTES)
            if body is None:
                too_large = f"Request body larger than {MAX_BODY_BYTES // 1_000_000} MB."
                await _refuse(send, 413, too_large, api=path.startswith(API_PREFIX))
                return
        if path in LOGIN_PATHS:
            send = _lax_cookies(send)
        if self.logins and not path.startswith(API_PREFIX):
            user = await self._user(scope)
            if user is None and path == "/" and scope["method"] in ("GET", "HEAD"):
                await self._login_page(scope, receive, send)
                return
            try:
                scope, body = await self._as_checked(scope, body, user)
            except Refusal as refusal:
                await _refuse(send, refusal.status, str(refusal))
                return
        await self.app(scope, receive if body is None else _replay(body, receive), send)

    async def _as_checked(self, scope: Scope, body: bytes | None, user: str | None) -> tuple[Scope, bytes | None]:
        """The request as Gradio is to see it, once `user` may send it (Refusal otherwise): a login, unless the
        path is public; and every session hash and event id it names, wherever Gradio reads them, `user`'s."""
        if user is None:
            if not _is_public(scope["path"]):
                raise Refusal(401, "Not authenticated.")
            return scope, body
        scope, body, named = read_request(scope, body, self.session_routes)
        for session in named:
            mine = await self.owners.claim(session, user)
            if mine is None:
                raise Refusal(503, "Sessions cannot be checked just now; try again in a moment.")
            if not mine:
                raise Refusal(403, NOT_YOURS)
        return scope, body

    async def _login_page(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Gradio's login page without what Gradio's own route adds to it for strangers too: the description of
        every API endpoint, with parameter defaults such as model ids."""
        from gradio import route_utils
        from gradio.routes import templates

        request = Request(scope, receive)
        blocks = self.gradio.get_blocks()
        config = {
            "auth_required": True,
            "auth_message": blocks.auth_message,
            "space_id": blocks.space_id,
            "root": route_utils.get_root_url(request=request, route_path="/", root_path=self.gradio.root_path),
            "page": {"": {"layout": {}}},
            "pages": [""],
            "components": [],
            "dependencies": [],
            "current_page": "",
        }
        nothing: dict[str, dict[str, Any]] = {"named_endpoints": {}, "unnamed_endpoints": {}}
        context = {"base_url": "./", "config": config, "gradio_api_info": nothing}
        response = templates.TemplateResponse(request=request, name="frontend/index.html", context=context)
        await response(scope, receive, send)

    async def _user(self, scope: Scope) -> str | None:
        """The login of Gradio's access-token cookie, or None. With replicas, the session is looked up in Redis
        first, where Gradio's routes then find it."""
        cookies: SimpleCookie = SimpleCookie()
        for name, value in scope.get("headers", []):
            if name == b"cookie":
                with contextlib.suppress(CookieError):
                    cookies.load(value.decode("latin-1"))
        cookie_id = self.gradio.cookie_id
        tokens = self.gradio.tokens
        for name in (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"):
            morsel = cookies.get(name)
            if morsel is None:
                continue
            user = await tokens.check(morsel.value) if isinstance(tokens, SharedSessions) else tokens.get(morsel.value)
            if user:
                return str(user)
        return None


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None as soon as it grows past `limit`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app the body already read, then what the client sends next (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _lax_cookies(send: Send) -> Send:
    """Gradio's login cookies as SameSite=Lax (it sets SameSite=None, for embedding in other sites' pages)."""

    async def lax(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = []
            for name, value in message.get("headers", []):
                if name == b"set-cookie":
                    attributes = [a for a in value.split(b";") if not a.strip().lower().startswith(b"samesite")]
                    value = b";".join([*attributes, b" SameSite=Lax"])
                headers.append((name, value))
            message["headers"] = headers
        await send(message)

    return lax


async def _refuse(send: Send, status: int, detail: str, *, api: bool = False) -> None:
    """An error answer; for the API in OpenAI's shape, so its SDKs raise their own error."""
    error = {"message": detail, "type": "invalid_request_error", "param": None, "code": None}
    body = json.dumps({"error": error} if api else {"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class ServerThread:
    """The app served by uvicorn on a background thread (tests, benchmarks); `close()` stops it."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self.server = uvicorn.Server(_uvicorn_config(app, host, port, lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="switchboard-http")
        self.url = f"http://{host}:{port}/"

    def start(self, timeout: float = 30.0) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the app did not start on {self.url}")
            time.sleep(0.02)
        return self

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve(app: FastAPI, host: str, port: int) -> None:
    """Serve the app in the foreground until interrupted."""
    uvicorn.Server(_uvicorn_config(app, host, port, timeout_graceful_shutdown=2)).run()


def _uvicorn_config(app: FastAPI, host: str, port: int, **options: Any) -> uvicorn.Config:
    """uvicorn as the app is served: forwarded headers trusted only from app.trusted_proxies (create_server), never
    by uvicorn's default; uvloop (a dependency: "auto" picks it) and httptools with the connection limits of
    webui/connections.py (`app.state.connection_limits`); no WebSockets (Gradio's page uses none)."""
    limits = getattr(app.state, "connection_limits", ConnectionLimits())
    options.update(log_level="warning", proxy_headers=False, http=http_protocol(limits), ws="none")
    return uvicorn.Config(app, host=host, port=port, **options)
