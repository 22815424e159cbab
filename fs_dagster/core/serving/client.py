"""A small HTTP client for a deployment's REST endpoint: one keep-alive connection, JSON in and out.

A connection the server closed while idle (a worker retired by a rolling switch, a keep-alive timeout) fails on
its next use before the request reached any worker; such a failure on a reused connection is retried once on a
fresh one. A failure on a fresh connection is raised (as :class:`DeploymentError` naming the address).
"""

from __future__ import annotations

import http.client
import json
import threading
from typing import Any

from fs_dagster.core.errors import DeploymentError, FeatureStoreError

PREDICT_PATH = "/api/v1.0/predictions"
_RETRYABLE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, http.client.BadStatusLine)


class PredictionError(FeatureStoreError):
    """The deployment refused a request (4xx/5xx); ``status`` is the HTTP status, ``reason`` seldon's reason and the
    message the server's explanation."""

    def __init__(self, message: str, status: int, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class ServingClient:
    """JSON over HTTP to ``host:port`` (thread-safe: one connection per thread)."""

    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._local = threading.local()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """(status, decoded JSON body or text) of one request."""
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        headers = {"Content-Type": "application/json"} if data is not None else {}
        for attempt in (0, 1):
            conn = self._connection()
            reused = conn.sock is not None
            try:
                conn.request(method, path, body=data, headers=headers)
                response = conn.getresponse()
                raw = response.read()
                break
            except _RETRYABLE as exc:
                self.close()
                if not reused or attempt:
                    raise DeploymentError(f"deployment at {self.address}: {method} {path} failed: {exc!r}") from exc
            except OSError as exc:
                self.close()
                raise DeploymentError(f"deployment at {self.address}: {method} {path} failed: {exc}") from exc
        try:
            return response.status, json.loads(raw)
        except ValueError:
            return response.status, raw.decode(errors="replace")

    def predict(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The ``jsonData`` of a prediction answer.

        Raises:
            PredictionError: the server refused the request, with its status and explanation.
        """
        status, body = self.request("POST", PREDICT_PATH, payload)
        if status != 200:
            info = body.get("status", {}) if isinstance(body, dict) else {}
            raise PredictionError(f"deployment at {self.address} answered {status}: "
                                  f"{info.get('info', body)}", status, info.get("reason", ""))
        return body["jsonData"]
