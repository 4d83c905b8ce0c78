"""``plantstream reason``: an operator's reason for a past stop, posted to the running pipeline.

The pipeline (``run`` or ``demo``) checks the request and applies it (``POST /reason``,
:mod:`runtimes.http`, :mod:`streams.operator_reason`); this side only sends it and reads the
answer. It talks to a plantstream pipeline only: an answer without ``Server: plantstream/...``
is not taken for one.
"""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

from runtimes.tail import NotAPipeline

__all__ = ["DEFAULT_URL", "post_reason"]

DEFAULT_URL = "http://127.0.0.1:8765/reason"
"""Where ``run`` and ``demo`` take reasons unless ``--http-port`` or the plant file moved them."""
_TIMEOUT_S = 10.0
_MAX_ANSWER = 65_536


def post_reason(url: str, machine: str, at: str, reason: str | int) -> tuple[int, dict[str, Any]]:
    """Send one reason; return the pipeline's status and JSON answer.

    Raises:
        OSError: nothing answers at ``url``.
        NotAPipeline: something answers, but not a plantstream pipeline, or not with JSON.
    """
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise NotAPipeline(f"{url!r} is not an http:// URL (the pipeline serves plain HTTP on loopback)")
    body = json.dumps({"machine": machine, "at": at, "reason": reason}).encode()
    connection = http.client.HTTPConnection(
        parts.hostname or "127.0.0.1", parts.port or 80, timeout=_TIMEOUT_S
    )
    try:
        connection.request(
            "POST", parts.path or "/reason", body=body, headers={"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        server = response.getheader("Server") or ""
        if not server.startswith("plantstream/"):
            said = f"Server: {server}" if server else "no Server header"
            raise NotAPipeline(f"it answered {response.status} with {said}, not Server: plantstream/...")
        raw = response.read(_MAX_ANSWER)
    finally:
        connection.close()
    try:
        answer = json.loads(raw)
    except ValueError:
        raise NotAPipeline(f"it answered {response.status} without JSON: {raw[:200]!r}") from None
    if not isinstance(answer, dict):
        raise NotAPipeline(f"it answered {response.status} with JSON that is not an object")
    return response.status, answer
