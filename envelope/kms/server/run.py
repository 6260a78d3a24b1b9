"""Run the KMS endpoint on uvicorn: in the foreground (`serve`) or on a background thread (`KMSServer`).

Shutdown is graceful: on SIGINT/SIGTERM (or `KMSServer.stop`) no new connections are accepted
and requests in flight finish (up to ``graceful_timeout`` seconds).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import IO, Any, Self

from .app import DEFAULT_MAX_BODY, KMSApp

__all__ = ["DEFAULT_PORT", "KMSServer", "bind", "serve"]

DEFAULT_PORT = 8787


def bind(host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> socket.socket:
    """A listening TCP socket (``port=0``: an ephemeral port); connections queue from now on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        # Name the address: "Address already in use" alone does not say which.
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        raise OSError(exc.errno, f"cannot listen on {shown}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


_WORKER_ENV = "ENVELOPE_KMS_SERVE_WORKER"  # JSON settings for worker processes (never secrets)


def _uvicorn() -> Any:
    try:
        import uvicorn
    except ImportError:
        raise ImportError("`envelope kms serve` needs uvicorn: pip install 'envelope-crypto[serve]'") from None
    return uvicorn


def _check_tls(certfile: str, keyfile: str) -> None:
    """Load the certificate and key now, so a bad file is reported by name before the endpoint
    announces itself (uvicorn would load them later and report only "No such file or directory")."""
    for what, path in (("certificate", certfile), ("key", keyfile)):
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise OSError(exc.errno, f"cannot read the TLS {what} file {path}: {exc.strerror or exc}") from None
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(certfile, keyfile)
    except ssl.SSLError as exc:
        raise ValueError(f"the TLS certificate file {certfile} and key file {keyfile} do not load as a PEM "
                         f"certificate and its private key ({exc.reason or exc})") from None


def _config(app: Any, certfile: str | None, keyfile: str | None, graceful_timeout: int, **extra: Any) -> Any:
    if (certfile is None) != (keyfile is None):
        raise ValueError("TLS needs both a certificate file and a key file")
    if certfile is not None and keyfile is not None:
        _check_tls(certfile, keyfile)
    # proxy_headers=False: uvicorn would otherwise trust X-Forwarded-For from loopback peers, letting
    # any local client choose the source address written to the access and audit logs.
    return _uvicorn().Config(app, lifespan="on", access_log=False, log_level="warning", server_header=False,
                             proxy_headers=False, ssl_certfile=certfile, ssl_keyfile=keyfile,
                             timeout_graceful_shutdown=graceful_timeout, timeout_keep_alive=30, **extra)


def _url(sock: socket.socket, tls: bool) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{shown}:{port}"


def _open_log(access_log: IO[str] | str | None) -> IO[str] | None:
    if isinstance(access_log, str):
        if access_log == "-":
            return sys.stderr
        # One write() per line in append mode: lines from several workers never interleave.
        return open(access_log, "a", encoding="utf-8")
    return access_log


def _worker_app() -> KMSApp:
    """The app of one worker process (``--workers N``), built from the parent's settings."""
    settings = json.loads(os.environ[_WORKER_ENV])
    return KMSApp(settings["data_dir"], settings["regions"], max_body=settings["max_body"],
                  access_log=_open_log(settings["access_log"]), call_lock=settings["call_lock"],
                  database=settings["database"])


def serve(data_dir: str | os.PathLike[str] | None = None, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
          regions: Sequence[str] = ("us-east-1",), *, certfile: str | None = None, keyfile: str | None = None,
          max_body: int = DEFAULT_MAX_BODY, access_log: IO[str] | str | None = sys.stderr, workers: int = 1,
          graceful_timeout: int = 10, on_ready: Callable[[str], None] | None = None,
          database: str | None = None) -> None:
    """Serve until SIGINT or SIGTERM, then shut down gracefully and return.

    :param access_log: a stream, a file path (appended to), ``"-"`` for stderr, or None.
    :param workers: worker processes sharing the socket (the data directory serializes their
        writes; with more than one, ``access_log`` must be a path, ``"-"`` or None).
    :param on_ready: called with the endpoint URL once the socket listens (port 0 resolved).
    :param database: a PostgreSQL URL shared by several instances (default ``$ENVELOPE_KMS_DATABASE``).
    :raises ImportError: uvicorn is not installed.
    :raises OSError: the address cannot be bound.
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")
    uvicorn = _uvicorn()
    if workers == 1:
        app: Any = KMSApp(data_dir, regions, max_body=max_body, access_log=_open_log(access_log), database=database)
        config = _config(app, certfile, keyfile, graceful_timeout)
    else:
        if not (access_log is None or isinstance(access_log, str)):
            raise ValueError("with several workers the access log must be a file path, '-' or None")
        probe = KMSApp(data_dir, regions, max_body=max_body, access_log=None,  # fail here on bad settings
                       database=database)
        probe.access_keys.close()
        call_lock = None if sys.platform == "win32" else str(probe.access_keys.path.with_name("serve.lock"))
        os.environ[_WORKER_ENV] = json.dumps({
            "data_dir": None if data_dir is None else os.fspath(data_dir), "regions": list(regions),
            "max_body": max_body, "access_log": access_log, "call_lock": call_lock, "database": database})
        config = _config(f"{__name__}:_worker_app", certfile, keyfile, graceful_timeout, factory=True,
                         workers=workers)
    sock = bind(host, port)
    # uvicorn re-raises the signal that stopped it once it has shut down gracefully; with these
    # handlers in place that re-raise is a no-op, so a graceful stop returns (exit status 0).
    main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, _ignore) for sig in (signal.SIGINT, signal.SIGTERM)} if main else {}
    try:
        if on_ready is not None:
            on_ready(_url(sock, certfile is not None))
        if workers == 1:
            uvicorn.Server(config).run(sockets=[sock])
        else:
            from uvicorn.supervisors import Multiprocess

            Multiprocess(config, sockets=[sock]).run()
    finally:
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _ignore(signum: int, frame: Any) -> None:
    pass


class KMSServer:
    """The endpoint on a background thread, for tests and benchmarks; a context manager.

    ``url`` is known as soon as the object exists (the socket is bound in the constructor).
    Keyword arguments go to `KMSApp` (``max_body``, ``access_log``, ``clock``, ``account``).
    """

    def __init__(self, data_dir: str | os.PathLike[str] | None = None, host: str = "127.0.0.1", port: int = 0,
                 regions: Sequence[str] = ("us-east-1",), *, certfile: str | None = None,
                 keyfile: str | None = None, graceful_timeout: int = 5, **app_options: Any) -> None:
        self.app = KMSApp(data_dir, regions, **app_options)
        self._server = _uvicorn().Server(_config(self.app, certfile, keyfile, graceful_timeout))
        self._sock = bind(host, port)
        self.url = _url(self._sock, certfile is not None)
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        """Start serving on a daemon thread; returns once the server accepts requests."""
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="envelope-kms-serve", daemon=True)
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("envelope: the KMS endpoint failed to start")
            self._thread.join(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Shut down gracefully and wait for the thread."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
