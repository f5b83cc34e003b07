"""The one place API failures are mapped to exceptions.

Every failure of a request to the API server becomes a `KubeError` subclass chosen by its
HTTP status (or `Unreachable` when no answer came back), carrying the method, the path
and the server's own message. Callers catch the class that means something to them
(`NotFound`, `Forbidden`, `Conflict`...) and never look at raw status codes.

This module knows nothing about the kinds the agent reads: that is `agent.kube.kinds`.
"""

from __future__ import annotations

import json


class KubeError(Exception):
    """A request to the API server failed."""

    status: int = 0

    def __init__(
        self, *, method: str, path: str, status: int = 0, message: str = "", retry_after: float | None = None
    ) -> None:
        self.method = method
        self.retry_after = retry_after  # seconds, from the server's Retry-After header
        self.path = path
        self.status = status
        self.message = message
        what = f"{method} {path}"
        detail = f"HTTP {status}" if status else "no answer"
        super().__init__(f"{what}: {detail}: {message}" if message else f"{what}: {detail}")


class Unreachable(KubeError):
    """No HTTP answer: connection refused or reset, TLS failure, timeout."""


class UnreadableAnswer(KubeError):
    """The server answered, but the answer is not safe to decode: too large (it was abandoned
    part way) or nested too deeply for the JSON reader. Never retried as it is: a list asks
    again for fewer objects (`Kube.list_pages`)."""


class AnswerTooLarge(UnreadableAnswer):
    pass


class AnswerTooDeep(UnreadableAnswer):
    pass


class AnswerNotJSON(UnreadableAnswer):
    """Not JSON the agent can decode (a number of more than 4,300 digits is one such)."""


class BadRequest(KubeError):
    status = 400


class Unauthorized(KubeError):
    status = 401


class Forbidden(KubeError):
    status = 403


class NotFound(KubeError):
    status = 404


class Conflict(KubeError):
    status = 409


class Gone(KubeError):
    """410: a list's continue token or a watch's resourceVersion expired: list again."""

    status = 410


class Unprocessable(KubeError):
    status = 422


class TooManyRequests(KubeError):
    status = 429


class ServerError(KubeError):
    """5xx: the server (or something in front of it) failed; the request may be retried."""


_BY_STATUS: dict[int, type[KubeError]] = {
    cls.status: cls
    for cls in (BadRequest, Unauthorized, Forbidden, NotFound, Conflict, Gone, Unprocessable, TooManyRequests)
}


def error_for(
    *, method: str, path: str, status: int, body: bytes | str | None, retry_after: float | None = None
) -> KubeError:
    """Build the exception for an HTTP error answer, with the server's `Status.message`."""
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else KubeError)
    return cls(method=method, path=path, status=status, message=_status_message(body), retry_after=retry_after)


def _status_message(body: bytes | str | None) -> str:
    if not body:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return text.strip()[:300]
    message = doc.get("message") if isinstance(doc, dict) else None
    return message if isinstance(message, str) else text.strip()[:300]
