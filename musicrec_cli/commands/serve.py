"""`musicrec serve`: load the artifacts once, then answer over HTTP until Ctrl-C or SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from threadpoolctl import threadpool_limits

from musicrec_cli import console
from musicrec_cli.artifacts import ArtifactError
from musicrec_cli.session import session
from musicrec_cli.sources import InputError

if TYPE_CHECKING:
    import uvicorn

    from musicrec_cli.http.app import Live

log = logging.getLogger(__name__)


def _reload_in_background(live: Live) -> None:
    """Reload off the signal handler's thread; a failed reload keeps serving the old artifacts."""

    def work() -> None:
        try:
            snap = live.reload()
        except ArtifactError as exc:
            log.error("reload failed, still serving the previous artifacts: %s", exc)
            return
        log.info("reloaded the artifacts of %s (loaded at %s)", snap.root, snap.loaded_at)

    threading.Thread(target=work, name="musicrec-reload", daemon=True).start()


def serve(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option(help="Address to listen on; 0.0.0.0 makes it reachable from others.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
) -> None:
    """Serve recommendations over HTTP, with a page for new listeners at /.

    Reads 01_preprocess to 04_train once (and 05_predict's lists when that stage was built from
    them), after checking they come from one run of each stage; writes nothing. The JSON API is
    described at /openapi.json and /docs. POST /reload or kill -HUP PID loads newer artifacts;
    requests already running finish on the old ones. Needs FastAPI and uvicorn, the serve extra
    of the musicrec package.
    """
    s = session(ctx)

    def start() -> tuple[Live, uvicorn.Server]:
        try:
            import uvicorn  # noqa: PLC0415 (optional extra)

            from musicrec_cli.http.app import create_app  # noqa: PLC0415 (FastAPI)
            from musicrec_cli.http.snapshot import load_snapshot  # noqa: PLC0415
        except ImportError as exc:
            msg = f"musicrec serve needs the serve extra ({exc.name} is missing): " + (
                "pip install 'musicrec[serve]'."
            )
            raise InputError(msg) from exc
        cfg = s.config()
        root = s.artifacts
        app = create_app(lambda: load_snapshot(root, cfg.predict))
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info"))
        return app.state.live, server

    live, server = s.guard(start)

    def on_hup(_signum: int, _frame: FrameType | None) -> None:
        _reload_in_background(live)

    signal.signal(signal.SIGHUP, on_hup)
    console.note(
        f"serving http://{host}:{port}/ (API at /docs); reload with POST /reload or "
        f"kill -HUP {os.getpid()}"
    )
    # requests run in parallel threads already; a BLAS pool under each only oversubscribes
    # the cores (the same reason predict scores with one BLAS thread per worker)
    with threadpool_limits(1, "blas"):
        server.run()
