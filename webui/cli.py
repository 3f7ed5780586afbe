"""`switchboard` (and `python -m webui`): run the app, check a config, or list models.

switchboard [--config PATH] [--host HOST] [--port PORT] [--share]
switchboard check [--config PATH]     validate the configuration and exit (0 valid, 2 invalid)
switchboard models [--config PATH]    list every model id and route the UI would offer
switchboard serve [--host H] [--port P]   the OpenAI-compatible API (/v1) alone, no UI
switchboard token NAME                make an API key for login NAME (printed once)
switchboard token --revoke ID         revoke an API key
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys

from backend import (
    Backend,
    ConfigError,
    ConversationError,
    ToolBox,
    hash_password,
    load_settings,
    load_users,
)

# A server's heap is mostly what Gradio builds at start-up, and every full collection walked it again: during 50
# streaming chats, 10 full collections of up to 100 ms each (the whole tail of time to first token). Collecting
# young objects every 10,000 allocations instead of 700 makes full collections rare (2 in the same run, GC time
# 1.1 s -> 0.3 s); after start-up the built app is frozen out of collections altogether (see _run).
GC_THRESHOLDS = (10_000, 20, 50)


def main(argv: list[str] | None = None) -> int:
    gc.set_threshold(*GC_THRESHOLDS)
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # httpx logs every request with its URL at INFO: noise at this level, and it names the upstreams.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # a line per plugin and migration step at every start
    if args.command == "passwd":
        return _passwd(args.name)
    try:
        settings = load_settings(args.config)
        users = load_users(settings.auth.users_file, settings.auth.users_env)
    except ConfigError as error:
        print(f"switchboard: {error}", file=sys.stderr)
        return 2
    if args.command == "check":
        return _check(settings, users)
    backend = Backend(settings)
    if users is not None:  # replicas: guessing is throttled across all of them
        backend.share_login_failures(users)
    if args.command == "models":
        return _models(backend)
    if args.command == "token":
        return _token(backend, users, args.name, args.revoke)
    return _run(backend, users, args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchboard", description="A local-first chat UI over many providers.")
    parser.add_argument(
        "command", nargs="?", choices=["run", "serve", "check", "models", "passwd", "token"], default="run"
    )
    parser.add_argument("name", nargs="?", help="with passwd or token: the login name")
    parser.add_argument("--revoke", metavar="ID", help="with token: revoke the API key with this id")
    parser.add_argument("--config", help="TOML config file (default: $SWITCHBOARD_CONFIG, ./config.toml, ...)")
    parser.add_argument("--host", help="address to listen on (default: app.host, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default: app.port, 7860)")
    parser.add_argument("--share", action="store_true", help="also open a public Gradio share link")
    parser.add_argument(
        "--i-understand-anyone-can-use-my-keys",
        dest="open_to_all",
        action="store_true",
        help="serve a share link or a non-loopback address WITHOUT logins (anyone who reaches it spends your keys)",
    )
    return parser


def _passwd(name: str | None) -> int:
    import getpass

    if not name or ":" in name:
        print("switchboard: usage: switchboard passwd NAME (a name without ':')", file=sys.stderr)
        return 2
    password = getpass.getpass(f"Password for {name}: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        print("switchboard: use a password of at least 8 characters", file=sys.stderr)
        return 2
    print(f"{name}:{hash_password(password)}")
    return 0


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check(settings, users) -> int:
    print(f"config OK: {len(settings.providers)} provider(s), {len(settings.routes)} route(s)")
    print(f"  logins: {len(users)} user(s)" if users else "  logins: off (one local owner)")
    for name, provider in settings.providers.items():
        models = ", ".join(provider.model_names()) or "(asked from the endpoint at start-up)"
        print(f"  {name} [{provider.kind}]: {models}")
    for route, targets in settings.routes.items():
        print(f"  route {route}: {' → '.join(targets)}")
    print(f"  default chat model: {settings.defaults.chat}")
    if settings.tools:
        _check_tools(settings)
    return 0


def _check_tools(settings) -> None:
    """Start each tool server once and list what it offers the model, or the one sentence saying why it cannot.
    A tool's problem is not a config error: the app runs, and a chat simply cannot use that tool."""
    import asyncio

    async def check() -> dict:
        tools = ToolBox(settings.tools)
        try:
            return await tools.check()
        finally:
            await tools.aclose()

    for name, found in asyncio.run(check()).items():
        config = settings.tools[name]
        flags = ", ".join(
            flag
            for flag, on in (("confirm", config.confirm), ("shared", config.shared), ("default", config.default))
            if on
        )
        head = f"  tool {name} [{config.kind}{': ' + flags if flags else ''}]"
        print(f"{head}: {', '.join(found) or '(no tools)'}" if isinstance(found, list) else f"{head}: {found}")


def _models(backend: Backend) -> int:
    import asyncio

    asyncio.run(backend.models.refresh())
    for choice in backend.models.chat_choices():
        print(choice.id)
    return 0


def _token(backend: Backend, users, name: str | None, revoke: str | None) -> int:
    """Make an API key for a login (printed once: only its hash is kept), or revoke one."""
    import asyncio

    async def act() -> str:
        await backend.open_store()
        try:
            if revoke:
                owner = await backend.api_keys.revoke(revoke)
                return f"revoked API key {revoke} of {owner}"
            key_id, key = await backend.api_keys.create(name or "")
            return f"API key {key_id} for {name} (keep it: it is not shown again):\n{key}"
        finally:
            await backend.aclose()

    if not revoke:
        if users is None:
            print(
                "switchboard: logins are off: the API needs no key on a loopback address (add [auth] for keys)",
                file=sys.stderr,
            )
            return 2
        if not name or name not in users.names():
            print("switchboard: usage: switchboard token NAME, for a login NAME of the users file", file=sys.stderr)
            return 2
    try:
        print(asyncio.run(act()))
    except (ConfigError, ConversationError) as error:
        print(f"switchboard: {error}", file=sys.stderr)
        return 2
    return 0


def _run(backend: Backend, users, args) -> int:
    from .app import prepare
    from .identity import LOCAL_OWNER
    from .server import create_api_server, create_server, serve

    host = args.host or backend.settings.app.host
    exposed = args.share or not _is_loopback(host)
    if exposed and users is None and not args.open_to_all:
        where = "a public share link" if args.share else f"address {host}"
        print(
            f"switchboard: refusing to serve {where} without logins: add [auth] to the config (see README), "
            "or pass --i-understand-anyone-can-use-my-keys",
            file=sys.stderr,
        )
        return 2

    try:
        prepare(backend, users.names() if users else [LOCAL_OWNER])
        if args.command == "serve":
            server = create_api_server(backend, users=users, exposed=exposed)
        else:
            server = create_server(backend, users=users, exposed=exposed)
    except ConfigError as error:
        print(f"switchboard: {error}", file=sys.stderr)
        return 2
    gc.collect()
    gc.freeze()  # what start-up built lives as long as the server: no collection needs to walk it again
    port = args.port or backend.settings.app.port
    print(f"* Running on http://{host}:{port}", flush=True)
    print(f"* OpenAI-compatible API at http://{host}:{port}/v1", flush=True)
    if args.share:
        _open_share_link(host, port)
    serve(server, host, port)
    return 0


def _open_share_link(host: str, port: int) -> None:
    """A public link through Gradio's share servers (as `launch(share=True)` makes), once the server listens."""
    import secrets
    import socket
    import threading
    import time

    from gradio import networking

    def tunnel() -> None:
        for _ in range(300):  # until the server listens
            try:
                socket.create_connection((host, port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        try:
            url = networking.setup_tunnel(host, port, secrets.token_urlsafe(32), None, None)
        except Exception as error:  # no network, a blocked binary: the local server goes on
            print(f"switchboard: could not open a share link ({error})", file=sys.stderr, flush=True)
            return
        print(f"* Running on public URL: {url.replace('http://', 'https://', 1)}", flush=True)

    threading.Thread(target=tunnel, daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
