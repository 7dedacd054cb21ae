"""A tiny HTTP object store for the SDK's unit tests: GET and PUT by path, with faults.

It stands in for presigned URLs (the query string is ignored) so that the SDK's streaming,
checking and retry logic is tested in a second; tests/e2e/test_payloads_worker.py proves
the same against the real S3 server, control plane and RabbitMQ.
"""

from __future__ import annotations

import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

#: A fault served instead of the normal answer, once each, in order.
#: ``("status", code, body)``; ``("truncate", n)`` sends ``n`` bytes of a GET's body then
#: closes; ``("drop",)`` closes the connection without answering.
Fault = tuple[object, ...]


class Store:
    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str]] = {}
        self.faults: deque[Fault] = deque()
        self.requests: list[tuple[str, str]] = []
        store = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                key = urlsplit(self.path).path
                store.requests.append(("GET", key))
                if self._fault(key):
                    return
                if key not in store.objects:
                    self._answer(404, b"<Error><Code>NoSuchKey</Code></Error>")
                    return
                self._answer(200, store.objects[key][0])

            def do_PUT(self) -> None:
                key = urlsplit(self.path).path
                store.requests.append(("PUT", key))
                length = int(self.headers["Content-Length"])
                if self._fault(key):
                    return
                body = self.rfile.read(length)
                store.objects[key] = (body, self.headers.get("Content-Type", ""))
                self._answer(200, b"")

            def _fault(self, key: str) -> bool:
                if not store.faults:
                    return False
                fault = store.faults.popleft()
                if fault[0] == "status":
                    self._answer(int(str(fault[1])), str(fault[2]).encode())
                elif fault[0] == "truncate":
                    data = store.objects[key][0]
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: int(str(fault[1]))])
                    self.close_connection = True
                else:
                    self.close_connection = True
                return True

            def _answer(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, key: str) -> str:
        """A URL of ``key`` as a presigned one looks (a signature in the query)."""
        return f"{self.endpoint}/bucket/{key}?X-Amz-Signature=abc"

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.objects[f"/bucket/{key}"] = (data, content_type)

    def get(self, key: str) -> tuple[bytes, str]:
        return self.objects[f"/bucket/{key}"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
