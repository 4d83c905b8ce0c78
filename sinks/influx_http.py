"""The InfluxDB v2 write API over HTTP: one ``POST /api/v2/write`` per body, and nothing else.

The sink needs one request of the whole v2 API. influxdb-client answers it with every generated
service and model of that API: importing the package cost the running pipeline about 10 MiB of
RSS and 500 modules (docs/benchmarks.md, issue 18) for a request this module makes with urllib3
(which the client used underneath as well): a connection pool kept alive between writes, the
token in ``Authorization: Token``, the body gzip-compressed at level 1 when asked, and no retries
or redirects of its own, since the sink decides what a failure means (sinks/influx.py).

The endpoint and its answers are those documented for InfluxDB 2.x, and served by InfluxDB OSS
1.8+ and 3.x: 204 when written, a JSON body ``{"code": ..., "message": ...}`` otherwise.
"""

from __future__ import annotations

import gzip
import json
from urllib.parse import urlencode

import urllib3

__all__ = ["WriteApi", "WriteRefused", "message_of"]

_MAX_BODY = 16_384
"""Bytes of an answer's body read (an error's message): a hostile or broken server cannot make the
sink hold a large body in memory."""
_MAX_MESSAGE = 1_000


class WriteRefused(Exception):
    """The server answered the write with a status other than 2xx."""

    def __init__(self, status: int, message: str, retry_after: str | None = None) -> None:
        self.status = status
        self.message = message
        self.retry_after = retry_after
        """The answer's ``Retry-After`` header as sent, if it had one."""
        super().__init__(f"HTTP {status}: {message}")


class WriteApi:
    """Writes bodies of line protocol to one bucket; safe to call from one thread at a time.

    Args:
        url: ``http(s)://host[:port][/path]`` of the server (a path prefix is kept, for a server
            behind a reverse proxy).
        token: the API token.
        org: the organisation, by name or id.
        bucket: the bucket, by name or id.
        timeout_s: to connect, and for each read of the answer.
        compress: send bodies gzip-compressed (``Content-Encoding: gzip``).
    """

    def __init__(
        self, url: str, token: str, org: str, bucket: str, *, timeout_s: float, compress: bool
    ) -> None:
        self._endpoint = url.rstrip("/") + "/api/v2/write"
        self._query = {"org": org, "bucket": bucket}
        self._headers = {
            "Authorization": f"Token {token}",
            "Content-Type": "text/plain; charset=utf-8",
            "Accept": "application/json",
            "User-Agent": "plantstream",
        }
        if compress:
            self._headers["Content-Encoding"] = "gzip"
        self._compress = compress
        self._timeout = urllib3.Timeout(connect=timeout_s, read=timeout_s)
        # One connection is all a sink uses (its writes are sequential); kept alive between writes.
        self._pool = urllib3.PoolManager(num_pools=1, maxsize=1, block=False)

    def __call__(self, body: bytes, precision: str) -> None:
        """Write ``body`` (lines of one ``precision``, joined by newlines); return once accepted.

        Raises:
            WriteRefused: the server answered with a status other than 2xx.
            urllib3.exceptions.HTTPError, OSError: no answer (refused, reset, timed out, TLS).
        """
        payload = gzip.compress(body, compresslevel=1) if self._compress else body
        url = f"{self._endpoint}?{urlencode({**self._query, 'precision': precision})}"
        reusable = False
        answer = self._pool.request(
            "POST",
            url,
            body=payload,
            headers=self._headers,
            timeout=self._timeout,
            retries=False,
            redirect=False,
            preload_content=False,
        )
        try:
            text = answer.read(_MAX_BODY)
            reusable = len(text) < _MAX_BODY
            if 200 <= answer.status < 300:
                return
            message = message_of(text, answer.reason or "")
            location = answer.headers.get("Location")
            if 300 <= answer.status < 400 and location:
                message = f"{message} (redirected to {location[:200]}; the sink's url should say where)"
            raise WriteRefused(answer.status, message, answer.headers.get("Retry-After"))
        finally:
            if reusable:
                answer.release_conn()
            else:
                answer.close()  # a body left unread: the connection cannot carry another request

    def close(self) -> None:
        """Close the kept-alive connection."""
        self._pool.clear()


def message_of(body: bytes, reason: str) -> str:
    """The server's words for a refused write: the JSON body's ``message``, else its text, else the reason.

    On one line, at most 1,000 characters.
    """
    text = body.decode("utf-8", "replace")
    try:
        decoded = json.loads(text)
    except ValueError:
        decoded = None
    if isinstance(decoded, dict) and isinstance(decoded.get("message"), str) and decoded["message"]:
        text = decoded["message"]
    return " ".join((text or reason).split())[:_MAX_MESSAGE]
