"""A stand-in web service for the health tests: names itself, serves HTTP, or hangs on purpose.

    web.py --name NAME --port PORT [--fail-file PATH] [--hang] [--accepted FILE]

Answers ``GET`` with 200, or 500 while ``--fail-file`` exists. With
``--hang`` it accepts connections and never answers (a service stuck on a
lock), appending a line to ``--accepted`` for each connection it takes.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PR_SET_NAME = 15


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--home", help="ignored: lets a test's clean-up find it")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fail-file")
    parser.add_argument("--hang", action="store_true")
    parser.add_argument("--accepted")
    args = parser.parse_args()
    ctypes.CDLL(None).prctl(PR_SET_NAME, args.name.encode()[:15], 0, 0, 0)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    if args.hang:
        listener = socket.create_server(("127.0.0.1", args.port), reuse_port=False)
        held = []
        while True:
            conn, _ = listener.accept()
            held.append(conn)  # kept open, never answered
            if args.accepted:
                with open(args.accepted, "a") as f:
                    f.write(f"{os.getpid()}\n")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
            failing = args.fail_file is not None and os.path.exists(args.fail_file)
            self.send_response(500 if failing else 200)
            self.send_header("Content-Length", "3")
            self.end_headers()
            self.wfile.write(b"bad" if failing else b"ok\n")

        def log_message(self, format: str, *values: object) -> None:
            pass

    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
