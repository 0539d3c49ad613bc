"""The ASGI middleware in front of the generator service: bearer-token auth, a request body
limit, and the error metric (every error response counted by reason).

Tokens come from GENLOOP_API_TOKENS (comma-separated) and/or the file GENLOOP_API_TOKENS_FILE
(one per line; blank lines and # comments skipped), several at once (rotation: add the new
one, move clients, drop the old). None configured: the API is open, and the server says so
at start-up. Probes and metrics stay open (OPEN_PATHS), and so do the API docs (they hold no
data). Tokens are compared in constant time and never logged or echoed."""
from __future__ import annotations

import hmac
import json
from pathlib import Path
from typing import Callable, Mapping

from components.errors import GenloopError

OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics", "/", "/docs.json"})
OPEN_PREFIXES = ("/static_content/",)
ENDPOINTS = frozenset({"/generate", "/generate_stream", "/generate_png"})


def load_tokens(env: Mapping[str, str]) -> list[str]:
    listed = env.get("GENLOOP_API_TOKENS", "").strip()
    tokens = [t.strip() for t in listed.split(",") if t.strip()]
    if listed and not tokens:
        raise GenloopError("GENLOOP_API_TOKENS is set but holds no token; give comma-separated tokens or "
                           "unset it (the API is then open).")
    path = env.get("GENLOOP_API_TOKENS_FILE", "").strip()
    if path:
        try:
            lines = Path(path).read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise GenloopError(f"GENLOOP_API_TOKENS_FILE={path}: cannot read it ({exc.__class__.__name__}); "
                               f"point it at a readable file with one token per line.") from None
        from_file = [t.strip() for t in lines if t.strip() and not t.strip().startswith("#")]
        if not from_file:                # set but empty: refuse rather than start open
            raise GenloopError(f"GENLOOP_API_TOKENS_FILE={path} holds no token; put one token per line "
                               f"in it, or unset the variable (the API is then open).")
        tokens += from_file
    if any(t.upper().startswith("REPLACE-ME") for t in tokens):
        raise GenloopError("the API token is still the placeholder of deploy/k8s/secret.yaml; create the "
                           "secret from a real token (deploy/README.md says how).")
    if any(len(t) < 16 for t in tokens):
        raise GenloopError("an API token is shorter than 16 characters; use long random tokens "
                           "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`).")
    return tokens


def _reply(status: int, message: str, headers: list | None = None):
    body = json.dumps({"error": message}).encode()
    start = {"type": "http.response.start", "status": status,
             "headers": [(b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode())] + (headers or [])}
    return start, {"type": "http.response.body", "body": body}


class GenloopGuard:
    def __init__(self, app, tokens: list[str] | tuple = (), max_body_bytes: int = 65536,
                 on_error: Callable[[int, str], None] | None = None):
        self.app, self.max_body = app, max_body_bytes
        self.tokens = [t.encode() for t in tokens]
        self.on_error = on_error or (lambda status, path: None)

    def _authorized(self, scope) -> bool:
        if not self.tokens:
            return True
        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        token = token.strip()
        ok = False
        for known in self.tokens:                        # every token compared: no early exit
            ok |= hmac.compare_digest(token, known)
        return scheme.lower() == b"bearer" and ok

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self.app(scope, receive, send)
        if scope["type"] != "http":                  # no websocket routes: refuse rather than pass unguarded
            await send({"type": "websocket.close", "code": 1008})
            return
        path = scope.get("path", "")
        endpoint = path if path in ENDPOINTS else "other"      # bounded label values

        async def reply(status: int, message: str, headers: list | None = None):
            self.on_error(status, endpoint)
            for event in _reply(status, message, headers):
                await send(event)

        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            return await self.app(scope, receive, send)
        if not self._authorized(scope):
            return await reply(401, "missing or wrong bearer token: send `Authorization: Bearer <token>`",
                               [(b"www-authenticate", b'Bearer realm="genloop"')])
        headers = dict(scope.get("headers") or [])
        media = headers.get(b"content-type", b"application/json").split(b";")[0].strip().lower()
        if path.startswith("/generate") and media != b"application/json":
            return await reply(415, f"Content-Type {media.decode('latin-1')!r}: send the request as "
                               f"JSON with `Content-Type: application/json`.")
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            return await reply(413, f"request body over {self.max_body} bytes; send a smaller request "
                               f"(or raise GENLOOP_MAX_BODY_BYTES on the server).")
        # read the body here (it is small), so a body without Content-Length is limited too
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body:
                return await reply(413, f"request body over {self.max_body} bytes; send a smaller "
                                   f"request (or raise GENLOOP_MAX_BODY_BYTES on the server).")
            if not message.get("more_body"):
                break
        if endpoint != "other" and scope.get("method") == "POST" and not b"".join(chunks).strip():
            return await reply(400, "empty request body: send a JSON object ({} asks for every default).")
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()                       # after the body: wait for a disconnect

        async def counting_send(message):
            if message["type"] == "http.response.start" and message["status"] >= 400:
                self.on_error(message["status"], endpoint)
            await send(message)

        return await self.app(scope, replay, counting_send)
