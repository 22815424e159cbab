"""Runs ``seldon-core-microservice`` with its HTTP and metrics servers bound to one address (loopback by default).

seldon-core 1.19 hard-codes ``0.0.0.0`` for its gunicorn servers and ignores ``GUNICORN_CMD_ARGS``, so a local
deployment started as-is would answer the whole network, unauthenticated. This entry point runs the very same
``seldon_core.microservice.main()`` after wrapping the ``load_config`` of seldon's gunicorn application so that the
bind address is ours (and the gunicorn process name carries the deployment's marker, which keeps the server
recognisable if ``setproctitle`` rewrites its command line). gRPC (``--grpc-workers`` > 0) would still bind every
address, so it is refused unless the bind address is ``0.0.0.0`` anyway.

A worker that has left gunicorn's loop (a graceful stop or a retirement during a rolling switch: its requests are
answered) runs the exit handlers (the inference logger sends what it holds), flushes its logs and ends with
``os._exit``: the interpreter's own finalization would join the native threads of the libraries the model loaded
(hudi-rs's tokio runtime), which hung for 7 s to forever and made every ``stop()`` wait for the 10 s escalation.

Usage::

    python -m fs_dagster.core.serving.launcher --marker fs-dagster-serving:/store/p/deployments/d --bind 127.0.0.1 \\
        -- fs_dagster.core.serving.seldon_model.FeatureStoreModel --service-type MODEL --http-port 9100 \\
        --metrics-port 9101 --grpc-workers 0
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import sys

from fs_dagster.core.extras import require


def _bound_load_config(original, host: str, marker: str):  # type: ignore[no-untyped-def]
    def load_config(self) -> None:  # type: ignore[no-untyped-def]
        original(self)
        port = str(self.cfg.bind[0]).rsplit(":", 1)[1]
        self.cfg.set("bind", [f"{host}:{port}"])
        self.cfg.set("proc_name", marker)
        self.cfg.set("worker_exit", _prompt_worker_exit(self.cfg.worker_exit))

    return load_config


def _prompt_worker_exit(original):  # type: ignore[no-untyped-def]
    """gunicorn's ``worker_exit`` hook, then, in the exiting worker itself, a prompt exit (see module doc).

    gunicorn calls the hook in the worker (the ``finally`` of its fork, a ``SystemExit`` propagating) and in the
    master when it reaps a worker: only the former exits here, with the worker's own exit code (a worker that failed
    to boot keeps the code that makes the master halt).
    """

    def worker_exit(server, worker) -> None:  # type: ignore[no-untyped-def]
        original(server, worker)
        if os.getpid() != worker.pid:
            return
        exiting = sys.exc_info()[1]
        if not isinstance(exiting, SystemExit):
            return  # (an unexpected exception: leave Python's normal exit path alone)
        code = exiting.code
        code = 0 if code is None else code if isinstance(code, int) else 1
        try:
            atexit._run_exitfuncs()
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)

    return worker_exit


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="fs_dagster.core.serving.launcher")
    parser.add_argument("--marker", required=True, help="identifies this server's processes")
    parser.add_argument("--bind", default="127.0.0.1", help="address of the HTTP and metrics servers")
    parser.add_argument("seldon_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    seldon_args = args.seldon_args[1:] if args.seldon_args[:1] == ["--"] else args.seldon_args
    if args.bind != "0.0.0.0":
        grpc = seldon_args[seldon_args.index("--grpc-workers") + 1] if "--grpc-workers" in seldon_args else "1"
        if grpc != "0":
            parser.error("gRPC binds every address: pass --grpc-workers 0 (or --bind 0.0.0.0)")
    require("serving", "the model server")
    from seldon_core import gunicorn_utils, microservice

    app = gunicorn_utils.StandaloneApplication  # (seldon's REST app subclasses it; the metrics app is one)
    app.load_config = _bound_load_config(app.load_config, args.bind, args.marker)
    sys.argv = ["seldon-core-microservice", *seldon_args]
    microservice.main()


if __name__ == "__main__":
    main()
