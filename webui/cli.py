"""`switchboard` (and `python -m webui`): run the app, check a config, or list models.

switchboard [--config PATH] [--host HOST] [--port PORT] [--share]
switchboard check [--config PATH]     validate the configuration and exit (0 valid, 2 invalid)
switchboard models [--config PATH]    list every model id and route the UI would offer
"""

from __future__ import annotations

import argparse
import logging
import sys

from backend import Backend, ConfigError, load_settings


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(args.config)
    except ConfigError as error:
        print(f"switchboard: {error}", file=sys.stderr)
        return 2
    if args.command == "check":
        return _check(settings)
    backend = Backend(settings)
    if args.command == "models":
        return _models(backend)
    return _run(backend, args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchboard", description="A local-first chat UI over many providers.")
    parser.add_argument("command", nargs="?", choices=["run", "check", "models"], default="run")
    parser.add_argument("--config", help="TOML config file (default: $SWITCHBOARD_CONFIG, ./config.toml, ...)")
    parser.add_argument("--host", help="address to listen on (default: app.host, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default: app.port, 7860)")
    parser.add_argument("--share", action="store_true", help="also open a public Gradio share link")
    return parser


def _check(settings) -> int:
    print(f"config OK: {len(settings.providers)} provider(s), {len(settings.routes)} route(s)")
    for name, provider in settings.providers.items():
        models = ", ".join(provider.model_names()) or "(asked from the endpoint at start-up)"
        print(f"  {name} [{provider.kind}]: {models}")
    for route, targets in settings.routes.items():
        print(f"  route {route}: {' → '.join(targets)}")
    print(f"  default chat model: {settings.defaults.chat}")
    return 0


def _models(backend: Backend) -> int:
    import asyncio

    asyncio.run(backend.models.refresh())
    for choice in backend.models.chat_choices():
        print(choice.id)
    return 0


def _run(backend: Backend, args) -> int:
    from .app import build_app, launch_options, prepare

    prepare(backend)
    app = build_app(backend)
    app.launch(**launch_options(backend, host=args.host, port=args.port, share=args.share))
    return 0


if __name__ == "__main__":
    sys.exit(main())
