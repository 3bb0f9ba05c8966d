"""The ceiling for the API benchmark: aiohttp's hello world, one process,
on the same machine and Python as ``dc-overview serve``.

    python -m bench.hello_server --port 8080 [--access-log] [--body FILE]

``--access-log`` logs every request at INFO to stderr, as ``dc-overview
serve`` does, to show what that alone costs. ``--body FILE`` also serves
that file's bytes (read once) at ``/body`` as JSON, gzip-compressed once
for clients that accept it: what answering with a ready-made body of the
same size would cost.
"""

from __future__ import annotations

import argparse
import gzip
import logging
from pathlib import Path

from aiohttp import web


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="Hello, world")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hello_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--access-log", action="store_true")
    parser.add_argument("--body", type=Path)
    args = parser.parse_args(argv)
    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_get("/api/health", hello)
    if args.body:
        body = args.body.read_bytes()
        packed = gzip.compress(body, 6)

        async def ready_made(request: web.Request) -> web.Response:
            if "gzip" in request.headers.get("Accept-Encoding", ""):
                response = web.Response(body=packed, content_type="application/json")
                response.headers["Content-Encoding"] = "gzip"
                return response
            return web.Response(body=body, content_type="application/json")

        app.router.add_get("/body", ready_made)
    if args.access_log:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    web.run_app(app, host=args.host, port=args.port, print=None,
                access_log=logging.getLogger("aiohttp.access") if args.access_log else None)


if __name__ == "__main__":
    main()
