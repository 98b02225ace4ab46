"""A stand-in for vLLM's server that is healthy until its first request, then dies the way a
kernel with an unsupported instruction kills vLLM's worker: by SIGILL, with faulthandler's
report in its log (or by the signal named in DYING_SIGNAL, e.g. SIGKILL as the out-of-memory
killer sends it, which leaves no report). Run as `python dying_server.py LAUNCHER serve MODEL --port P ...` (what
VllmServer runs, with this file in place of the serving environment's Python)."""

import faulthandler
import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


def kernel() -> None:
    os.kill(os.getpid(), getattr(signal, os.environ.get("DYING_SIGNAL", "SIGILL")))


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"data": [{"id": "m"}]}).encode() if self.path.endswith("/models") else b""
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        kernel()


if __name__ == "__main__":
    faulthandler.enable()
    port = int(sys.argv[sys.argv.index("--port") + 1])
    print(f"stand-in server on port {port}", flush=True)
    HTTPServer(("127.0.0.1", port), Handler).serve_forever()
