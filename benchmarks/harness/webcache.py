"""A browser's HTTP cache, for a simulated tab's static fetches: fresh entries are reused, stale ones are
revalidated with their ``ETag``/``Last-Modified``, and only a 200 costs its bytes again.

Freshness follows RFC 9111 as Chromium applies it: ``no-store`` is never kept, ``no-cache`` always
revalidates, ``max-age`` (or ``Expires``) is the lifetime, ``immutable`` is fresh for its ``max-age``, and a
response with neither but a ``Last-Modified`` is fresh for 10 % of its age then (the heuristic). A response
with no lifetime and no validator (``Cache-Control: public`` alone) is fetched again every time.
"""

from __future__ import annotations

import email.utils
import gzip
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

__all__ = ["Fetch", "HttpCache"]

_KEEP = 200_000


@dataclass
class Fetch:
    """One request as the network saw it: ``bytes`` on the wire (gzip-encoded if the server chose so)."""

    url: str
    status: int  # 200, 304, or 0 when served from the cache without a request
    bytes: int
    seconds: float
    cache_control: str = ""
    body: bytes = field(default=b"", repr=False)  # for a caller that parses the page (empty from the cache)


@dataclass
class _Entry:
    body_bytes: int
    stored_at: float
    lifetime: float
    etag: str | None
    last_modified: str | None
    no_cache: bool
    body: bytes = b""  # kept only for small responses (a page whose scripts are looked up)


def _lifetime(headers: dict[str, str], now: float) -> tuple[float, bool, bool]:
    """``(seconds fresh, no-store, no-cache)`` from a response's headers."""
    cc = {
        k.strip().lower(): v.strip()
        for part in headers.get("cache-control", "").split(",")
        if part.strip()
        for k, _, v in [part.partition("=")]
    }
    if "no-store" in cc:
        return 0.0, True, False
    if "max-age" in cc:
        try:
            return float(cc["max-age"]), False, "no-cache" in cc
        except ValueError:
            return 0.0, False, True
    if "expires" in headers:
        expires = email.utils.parsedate_to_datetime(headers["expires"]).timestamp()
        return max(0.0, expires - now), False, "no-cache" in cc
    if "last-modified" in headers:
        age = now - email.utils.parsedate_to_datetime(headers["last-modified"]).timestamp()
        return max(0.0, 0.1 * age), False, "no-cache" in cc
    return 0.0, False, "no-cache" in cc


@dataclass
class HttpCache:
    """One browser profile's cache (each simulated student has their own, as on their own laptop)."""

    entries: dict[str, _Entry] = field(default_factory=dict)
    log: list[Fetch] = field(default_factory=list)
    _locks: dict[str, threading.Lock] = field(default_factory=dict, repr=False)
    _guard: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def get(self, url: str, headers: dict[str, str] | None = None, timeout: float = 60.0) -> Fetch:
        """Fetch ``url`` as a browser would with this cache (blocking; run it in a thread). Requests for one
        URL wait for each other, as Chromium's cache lock makes a second iframe wait for the first's
        download and then read the cache instead of downloading again."""
        with self._guard:
            lock = self._locks.setdefault(url, threading.Lock())
        with lock:
            return self._get(url, headers, timeout)

    def _get(self, url: str, headers: dict[str, str] | None, timeout: float) -> Fetch:
        now = time.time()
        entry = self.entries.get(url)
        if entry is not None and not entry.no_cache and now - entry.stored_at < entry.lifetime:
            fetch = Fetch(url, 0, 0, 0.0, body=entry.body)
            self.log.append(fetch)
            return fetch
        request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip", **(headers or {})})
        if entry is not None and entry.etag:
            request.add_header("If-None-Match", entry.etag)
        if entry is not None and entry.last_modified:
            request.add_header("If-Modified-Since", entry.last_modified)
        start = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                body = resp.read()
                status, got = resp.status, {k.lower(): v for k, v in resp.headers.items()}
        except urllib.error.HTTPError as err:
            body, status, got = err.read(), err.code, {k.lower(): v for k, v in err.headers.items()}
        seconds = time.perf_counter() - start
        wire = len(body)
        if got.get("content-encoding") == "gzip" and body:
            body = gzip.decompress(body)  # the bytes counted are the wire's; the page is parsed decoded
        fetch = Fetch(url, status, wire, seconds, got.get("cache-control", ""), body)
        self.log.append(fetch)
        if status == 304 and entry is not None:
            fetch.body = entry.body
            entry.stored_at = now
            entry.lifetime, _, entry.no_cache = _lifetime(got, now)
        elif status == 200:
            lifetime, no_store, no_cache = _lifetime(got, now)
            if not no_store:
                kept = body if len(body) <= _KEEP else b""
                self.entries[url] = _Entry(
                    len(body), now, lifetime, got.get("etag"), got.get("last-modified"), no_cache, kept
                )
        return fetch
