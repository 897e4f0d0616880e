"""Token access for a listener bound beyond loopback: a bearer header, or a login cookie.

``kubepulse run --listen 0.0.0.0:9810`` refuses to start without ``--token`` (or
``KUBEPULSE_TOKEN``) unless ``--insecure`` is given. With a token, every route but the probes'
(``/healthz``, ``/readyz``), the login page and the static assets answers 401 without it: a
script sends ``Authorization: Bearer <token>``, a browser logs in once at ``/login`` and gets
an HttpOnly, SameSite=Strict cookie holding an HMAC of the token (never the token itself).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import urllib.parse
from http.cookies import CookieError, SimpleCookie

from kubepulse.export.http import Request, Response

COOKIE = "kubepulse_session"
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/login"})
PUBLIC_PREFIXES = ("/static/",)
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; connect-src 'self'; "
                               "img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
                               "form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}

_LOGIN = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>kubepulse: log in</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/app.css"></head>
<body class="login"><form method="post" action="/login">
<h1>kubepulse</h1><p>{message}</p>
<label>Token <input type="password" name="token" autocomplete="current-password" autofocus>
</label> <button type="submit">Log in</button></form></body></html>
"""


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class TokenGuard:
    """An ``HttpListener.guard``: lets a request through with the token, else refuses it."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("empty token")
        self._token = token.encode()
        self._session = hmac.new(self._token, b"kubepulse-dashboard-session",
                                 hashlib.sha256).hexdigest()

    def __call__(self, req: Request) -> Response | None:
        if req.path in PUBLIC_PATHS or req.path.startswith(PUBLIC_PREFIXES):
            return None
        if self.allowed(req):
            return None
        if req.path == "/" and req.method in ("GET", "HEAD"):
            return Response(303, b"", headers={"Location": "/login"})
        return Response(401, b"a token is required: Authorization: Bearer <token>, "
                             b"or log in at /login\n",
                        headers={"WWW-Authenticate": 'Bearer realm="kubepulse"'})

    def allowed(self, req: Request) -> bool:
        scheme, _, value = req.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(),
                                                              self._token):
            return True
        try:
            jar = SimpleCookie(req.headers.get("cookie", ""))
        except CookieError:
            return False
        morsel = jar.get(COOKIE)
        return morsel is not None and hmac.compare_digest(morsel.value.encode(),
                                                          self._session.encode())

    def login(self, req: Request) -> Response:
        if req.method == "POST":
            form = urllib.parse.parse_qs(req.body.decode("utf-8", "replace"))
            given = (form.get("token") or [""])[0].encode()
            if hmac.compare_digest(given, self._token):
                cookie = f"{COOKIE}={self._session}; Path=/; HttpOnly; SameSite=Strict"
                return Response(303, b"", headers={"Location": "/", "Set-Cookie": cookie})
            return login_page("Wrong token.", 401)
        return login_page("This agent requires its access token.", 200)


def login_page(message: str, status: int) -> Response:
    return Response(status, _LOGIN.format(message=message).encode(),
                    "text/html; charset=utf-8", headers=dict(SECURITY_HEADERS))
