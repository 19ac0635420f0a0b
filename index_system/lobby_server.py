"""`footfall index serve`: the lobby and district pages over HTTP, from the consumer's store.

A thin component: each request reads the store (its own lock, its own transaction) and hands
the figures to the pure `index_system.lobby_page`. Only GET of `/`, `/site/<site>` is
served; anything else is a 404, a bad `?day=` a 400, and a failure with one request is
logged and answered with a 500 without stopping the server.
"""

from __future__ import annotations

import logging
import threading
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from index_system.consumer import IndexStore
from index_system.lobby_page import RANKINGS, district_page, site_page

log = logging.getLogger(__name__)


class LobbyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], store: IndexStore, district: str, refresh_s: int) -> None:
        super().__init__(address, Handler)
        self.store = store
        self.district = district
        self.refresh_s = refresh_s

    def render(self, path: str, query: dict[str, list[str]]) -> tuple[int, str]:
        """(HTTP status, HTML) for one GET."""
        day_arg = query.get("day", [None])[0]
        try:
            day = date.fromisoformat(day_arg) if day_arg else self.store.last_date()
        except ValueError:
            return 400, "<h1>day must be YYYY-MM-DD</h1>"
        if path in ("/", "/index.html"):
            by = query.get("by", ["visits"])[0]
            views = self.store.week(day) if day else []
            return 200, district_page(self.district, views, by if by in RANKINGS else "visits", self.refresh_s)
        if path.startswith("/site/"):
            site = unquote(path[len("/site/"):])
            devices = [dev for s, dev in self.store.devices(site) if s == site]
            if not devices or day is None:
                return 404, f"<h1>no counts from site {site!r}</h1>"
            views = self.store.week(day, site)
            summaries = {dev: self.store.recompute_summary(dev, day) for dev in devices}
            return 200, site_page(site, day.isoformat(), self.store.site_bins(site, day), summaries,
                                  views[0] if views else None, self.district, self.refresh_s)
        return 404, "<h1>not found</h1>"


class Handler(BaseHTTPRequestHandler):
    server: LobbyServer

    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        url = urlsplit(self.path)
        try:
            status, html = self.server.render(url.path, parse_qs(url.query))
        except Exception:  # one bad request must not stop the screen
            log.exception("lobby page %s failed", self.path)
            status, html = 500, "<h1>internal error: see the server's log</h1>"
        body = html.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug("%s " + fmt, self.address_string(), *args)


def serve(store: IndexStore, host: str, port: int, district: str, refresh_s: int) -> LobbyServer:
    """Start serving in a thread; returns the server (its `server_address` has the port)."""
    server = LobbyServer((host, port), store, district, refresh_s)
    threading.Thread(target=server.serve_forever, name="lobby-http", daemon=True).start()
    log.info("lobby page on http://%s:%d/ (district %s)", *server.server_address[:2], district)
    return server
