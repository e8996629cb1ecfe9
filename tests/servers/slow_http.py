# A plain http.server.ThreadingHTTPServer, as a new user writes one: no
# signal handling at all (SIGTERM kills it mid-request), every answer
# takes DELAY_MS (default 50).  Answers GET with "<pid>\n".  HTTP/1.0
# closes each connection after its answer; with "keepalive", HTTP/1.1
# keeps it open until the client closes it.
# Usage: python3 slow_http.py PORT [DELAY_MS] [keepalive]
import http.server
import os
import sys
import time

port = int(sys.argv[1])
delay = (int(sys.argv[2]) if len(sys.argv) > 2 else 50) / 1000.0
keepalive = len(sys.argv) > 3 and sys.argv[3] == "keepalive"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1" if keepalive else "HTTP/1.0"

    def do_GET(self):
        time.sleep(delay)
        body = ("%d\n" % os.getpid()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
