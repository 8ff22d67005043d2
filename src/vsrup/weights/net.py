"""Telling "the host cannot be reached" (no network, unknown name, nothing listening) apart from a
transfer that broke off: the first is reported plainly, only the second is resumed."""

from __future__ import annotations

import errno
import os
import socket
import urllib.parse

# Connection errors of the HTTP stacks in use (urllib, requests/urllib3, httpx/httpcore), by name, so
# that none of them has to be imported to recognise them.
_CONNECT_ERRORS = {"ConnectError", "ConnectTimeout", "NameResolutionError", "NewConnectionError"}


def connect_failure(e: BaseException) -> str | None:
    """Why no connection could be made, if that is what `e` (or an exception behind it) says."""
    seen: set[int] = set()
    todo: list[object] = [e]
    while todo:
        x = todo.pop()
        if not isinstance(x, BaseException) or id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, socket.gaierror):
            return "its name cannot be resolved (no network connection, or no DNS)"
        if isinstance(x, ConnectionRefusedError):
            return "connection refused (nothing listens there)"
        if isinstance(x, OSError) and x.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return "network unreachable (no network connection?)"
        if isinstance(x, TimeoutError) and type(e).__name__ in ("URLError", *_CONNECT_ERRORS):
            return "no answer (timed out while connecting)"
        todo += [x.__cause__, x.__context__, getattr(x, "reason", None), *x.args]
    return "connection failed" if type(e).__name__ in _CONNECT_ERRORS else None


def cannot_connect(url: str, timeout: float = 10) -> str | None:
    """Why no TCP connection to url's host can be made, or None if it can (or a proxy is in use,
    which only the HTTP client knows how to go through)."""
    if any(
        os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")
    ):
        return None
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except OSError as e:
        return connect_failure(e) or ("no answer (timed out)" if isinstance(e, TimeoutError) else str(e))
    return None
