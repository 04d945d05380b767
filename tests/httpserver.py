"""A real HTTP file server on 127.0.0.1, in a thread, with the failures a download must survive.

    with FileServer({"ml-1m.zip": data}) as srv:
        srv.drop_after = 300_000       # next response: close the connection after 300,000 body bytes
        srv.fail_times = 2             # next 2 requests: HTTP 500
        srv.ignore_range = True        # answer Range requests with the whole file (200)
        url = srv.url("ml-1m.zip")     # unknown paths: 404
        srv.requests                   # [(path, Range header or None), ...] in arrival order

Range requests (``bytes=N-``) get 206 with Content-Range, or 416 with ``bytes */SIZE`` when N is at
or past the end, as a real server answers.
"""

from __future__ import annotations

import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileServer:
    def __init__(self, files: dict[str, bytes] | None = None):
        self.files: dict[str, bytes] = dict(files or {})
        self.requests: list[tuple[str, str | None]] = []
        self.drop_after: int | None = None  # once: body bytes sent before the connection is cut
        self.fail_times = 0  # the next N requests get HTTP 500
        self.ignore_range = False  # answer every request with the whole file (200)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def ranges(self) -> list[str | None]:
        return [r for _, r in self.requests]

    def __enter__(self) -> FileServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                path = self.path.split("?", 1)[0].lstrip("/")
                rng = self.headers.get("Range")
                server.requests.append((path, rng))
                if server.fail_times > 0:
                    server.fail_times -= 1
                    self._send(500, b"try again", reason="Internal Server Error")
                    return
                data = server.files.get(path)
                if data is None:
                    self._send(404, b"no such file", reason="Not Found")
                    return
                start, status, extra = 0, 200, {}
                m = re.fullmatch(r"bytes=(\d+)-", rng or "")
                if m and not server.ignore_range:
                    start = int(m.group(1))
                    if start >= len(data):
                        self._send(416, b"", extra={"Content-Range": f"bytes */{len(data)}"})
                        return
                    status = 206
                    extra["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                body = data[start:]
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()
                if server.drop_after is not None:
                    cut, server.drop_after = server.drop_after, None
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                self.wfile.write(body)

            def _send(self, status: int, body: bytes, reason: str | None = None, extra: dict | None = None):
                self.send_response(status, reason)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        assert self._httpd is not None and self._thread is not None
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def free_port() -> int:
    """A port on 127.0.0.1 with nothing listening (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
