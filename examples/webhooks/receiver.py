import json, os
from http.server import BaseHTTPRequestHandler, HTTPServer
from standardwebhooks import Webhook

hook = Webhook(os.environ["LACRE_WEBHOOK_SECRET"])  # the client's whsec_ secret

class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        try:  # raises unless signed with the secret, within 5 minutes
            event = hook.verify(body, {k.lower(): v for k, v in self.headers.items()})
        except Exception:
            self.send_response(400); self.end_headers(); return
        print(event["type"], self.headers["webhook-id"], json.dumps(event["data"]["result"]), flush=True)
        self.send_response(204); self.end_headers()

HTTPServer(("127.0.0.1", int(os.environ.get("PORT", "8000"))), Receiver).serve_forever()
