"""The app's outbound HTTP: one pooled client for everything a workflow sends out, guarded, and
one for the operator's own endpoints (the LLM base URL), trusted.

Both are httpx clients on Trio, owned by the app and closed at shutdown. They speak HTTP/1.1
only, so that cancelling a request (a Stop, a timeout) closes its socket and the remote sees the
disconnect at once; they ignore proxy environment variables, which would resolve names behind
the guard's back; they ask for uncompressed answers and refuse compressed ones, whose size could
not be known before unpacking them. Cancellation needs nothing here: a cancelled scope reaches
into httpcore, which closes the connection of a request it could not finish.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from http.cookiejar import CookieJar, DefaultCookiePolicy
from urllib.parse import urlsplit
from weakref import WeakValueDictionary

import attrs
import httpcore
import httpx
import trio

from flowtrux.outbound.backend import GuardedBackend
from flowtrux.outbound.errors import Blocked, OutboundError, Refused
from flowtrux.outbound.hosts import address_of
from flowtrux.outbound.networks import AddressPolicy
from flowtrux.outbound.secrets import Secrets, is_sensitive, redact_url

# httpx logs every request's URL at INFO, query secrets and all; the node logs tell each request
# with its URL redacted instead.
logging.getLogger("httpx").setLevel(logging.WARNING)

MAX_REDIRECTS = 5
MAX_CONNECTIONS = 512
PER_WORKSPACE = 64  # requests one workspace's runs may have going at once
KEEPALIVE_CONNECTIONS = 32
KEEPALIVE_S = 30.0
USER_AGENT = "FlowTrux"
SCHEMES = ("http", "https")


@attrs.frozen
class ExternalRequest:
    """One request as a node's log tells it (`externalRequests`); a redirect is one too."""

    method: str
    url: str  # redacted
    status: int | None
    duration_ms: int
    bytes: int

    def to_json(self) -> dict[str, object]:
        return {
            "method": self.method,
            "url": self.url,
            "status": self.status,
            "durationMs": self.duration_ms,
            "bytes": self.bytes,
        }


@attrs.define(eq=False)
class Exchange:
    """What one node sent and received: the secrets to scrub from what it reports, and the
    requests its log lists."""

    secrets: Secrets = attrs.field(factory=Secrets)
    requests: list[ExternalRequest] = attrs.field(factory=list)
    queued: str | None = None  # why a request cancelled before it went out was waiting

    def logged(self) -> list[dict[str, object]]:
        return [request.to_json() for request in self.requests]


@attrs.define(eq=False)
class Shares:
    """Each workspace's share of the outbound connections, so that one workspace's slow
    targets never take every connection of the pool from the others."""

    per_workspace: int
    _limiters: WeakValueDictionary[str, trio.CapacityLimiter] = attrs.field(
        factory=WeakValueDictionary
    )

    def of(self, workspace_id: str) -> trio.CapacityLimiter:
        """The workspace's limiter, for as long as a run holds it."""
        limiter = self._limiters.get(workspace_id)
        if limiter is None:
            limiter = self._limiters[workspace_id] = trio.CapacityLimiter(self.per_workspace)
        return limiter


@attrs.frozen
class ReadLimit:
    """The most of a response's body that is read, and the setting that says so."""

    bytes: int
    name: str  # e.g. "maxResponseBytes"


@attrs.define(eq=False)
class Download:
    """A response whose headers have arrived. However its body is read (whole, as text, as
    server-sent events), reading stops with Refused once it is over its limit."""

    response: httpx.Response
    limit: ReadLimit
    received: int = 0

    def __attrs_post_init__(self) -> None:
        body = self.response.stream
        assert isinstance(body, httpx.AsyncByteStream), "sent by an async client"
        self.response.stream = _Counted(body, self)

    def take(self, chunk: bytes) -> bytes:
        """Count `chunk` in; raises Refused once the body is over its limit."""
        self.received += len(chunk)
        if self.received > self.limit.bytes:
            raise Refused(
                f"the response is larger than {self.limit.bytes:,} bytes ({self.limit.name}):"
                f" cut off after {self.received:,}"
            )
        return chunk

    async def read(self) -> bytes:
        return await self.response.aread()


@attrs.define(eq=False)
class _Counted(httpx.AsyncByteStream):
    """A response body that counts what it yields into its Download."""

    _body: httpx.AsyncByteStream
    _download: Download
    _chunks: AsyncIterator[bytes] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._chunks = self._body.__aiter__()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        return self._download.take(await self._chunks.__anext__())

    async def aclose(self) -> None:
        await self._body.aclose()


@attrs.frozen
class Outbound:
    policy: AddressPolicy
    guarded: httpx.AsyncClient  # for every URL a workflow names
    trusted: httpx.AsyncClient  # for the operator's own endpoints only
    llm_base_url: httpx.URL  # the operator's LLM endpoint (FLOWTRUX_LLM_BASE_URL)
    shares: Shares
    share: trio.CapacityLimiter | None = None  # of the workspace whose run sends

    def for_workspace(self, workspace_id: str) -> Outbound:
        """These clients, for the runs of one workspace: at most its share of connections."""
        return attrs.evolve(self, share=self.shares.of(workspace_id))

    @asynccontextmanager
    async def open(
        self,
        request: httpx.Request,
        exchange: Exchange,
        limit: ReadLimit,
        *,
        trusted: bool = False,
    ) -> AsyncIterator[Download]:
        """Send `request` and yield its response once the headers have arrived, following up to
        5 redirects (the trusted client follows none: a redirect is its answer). Every request
        is recorded in `exchange`, with the bytes read of its body by the time the block ends.
        Waits first for one of the workspace's connections.

        Raises Blocked, Refused, OutboundError."""
        async with (
            self._connection_of_workspace(exchange),
            self._exchange(request, exchange, limit, trusted) as download,
        ):
            yield download

    @asynccontextmanager
    async def _connection_of_workspace(self, exchange: Exchange) -> AsyncIterator[None]:
        if self.share is None:
            yield
            return
        try:
            await self.share.acquire()
        except trio.Cancelled:
            exchange.queued = (
                f"it waited for one of the workspace's {self.share.total_tokens:.0f} outbound"
                " connections, all in use: no request was sent"
            )
            raise
        try:
            yield
        finally:
            self.share.release()

    @asynccontextmanager
    async def _exchange(
        self, request: httpx.Request, exchange: Exchange, limit: ReadLimit, trusted: bool
    ) -> AsyncIterator[Download]:
        client = self.trusted if trusted else self.guarded
        for _hop in range(MAX_REDIRECTS + 1):
            if not trusted:
                self.check(request.url)
            exchange.secrets.add_request(request)
            started = trio.current_time()
            try:
                response = await _send(client, request)
            except BaseException:  # refused, failed, timed out or cancelled before an answer
                record(exchange, request, None, started, 0)
                raise
            download = Download(response, limit)
            try:
                after = None if trusted else response.next_request
                if after is None:
                    _check_headers(response, limit)
                    yield download
                    return
            except httpx.HTTPError as exc:  # reading the body
                raise OutboundError(_describe(exc)) from None
            finally:
                record(exchange, request, response.status_code, started, download.received)
                await response.aclose()
            request = _without_credentials_elsewhere(request, after)
        raise Refused(f"more than {MAX_REDIRECTS} redirects")

    async def fetch(
        self, request: httpx.Request, exchange: Exchange, limit: ReadLimit, *, trusted: bool = False
    ) -> tuple[httpx.Response, bytes]:
        """The response to `request` and its whole body (within `limit`)."""
        async with self.open(request, exchange, limit, trusted=trusted) as download:
            return download.response, await download.read()

    def build(
        self,
        method: str,
        url: httpx.URL,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str | list[str]] | None = None,
        content: bytes | None = None,
        trusted: bool = False,
    ) -> httpx.Request:
        """A request for `open`, asking for an uncompressed answer whatever `headers` say.
        `params` are added to the URL's own query (a name in both takes the value of `params`).
        Raises Refused for a header httpx cannot send."""
        client = self.trusted if trusted else self.guarded
        try:
            if params:
                url = url.copy_merge_params(params)
            request = client.build_request(method, url, headers=headers, content=content)
        except (UnicodeEncodeError, ValueError, TypeError) as exc:
            raise Refused(f"the request cannot be sent: {exc}") from None
        for name, value in request.headers.items():
            if any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in value):
                raise Refused(
                    f"the header {name!r} holds a control character (a line break, NUL, …),"
                    " which a header cannot carry"
                )
        request.headers["Accept-Encoding"] = "identity"
        return request

    def check(self, url: httpx.URL) -> None:
        """Refuse a URL the guard can judge before any lookup: another scheme than http(s), no
        host, a host that spells a refused address."""
        if url.scheme not in SCHEMES:
            raise Refused(f"only http and https URLs can be requested, not {url.scheme!r}")
        if not url.host:
            raise Refused("the URL has no host")
        address = address_of(url.host)
        if address is None or self.policy.opens(address, _port(url)):
            return
        if (why := self.policy.refusal(address)) is not None:
            raise Blocked(f"blocked: {_spelled(url.host, address)}{why}")

    def url(self, text: str) -> httpx.URL:
        """`text` as a URL. Raises Blocked for a host spelling a refused address that httpx
        would not even parse (such as `0177.0.0.1`), Refused for any other bad URL."""
        try:
            url = httpx.URL(text)
            _ = url.host  # decoded only when read: an IDNA name that does not decode raises
            return url
        except (httpx.InvalidURL, UnicodeError) as exc:
            host = _host_as_written(text)
            address = None if host is None else address_of(host)
            if host and address is not None and (why := self.policy.refusal(address)):
                raise Blocked(f"blocked: {_spelled(host, address)}{why}") from None
            raise Refused(f"the URL is not valid: {exc}") from None


def record(
    exchange: Exchange, request: httpx.Request, status: int | None, started: float, size: int
) -> None:
    elapsed_ms = round((trio.current_time() - started) * 1000)
    url = redact_url(request.url)
    exchange.requests.append(ExternalRequest(request.method, url, status, elapsed_ms, size))


async def _send(client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    try:
        return await client.send(request, stream=True, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise OutboundError(_describe(exc)) from None


def _describe(exc: httpx.HTTPError) -> str:
    """An httpx error as a sentence. Its message names no URL (the request's may hold
    secrets)."""
    detail = str(exc) or type(exc).__name__
    return f"the request failed: {detail}"


def _without_credentials_elsewhere(request: httpx.Request, after: httpx.Request) -> httpx.Request:
    """A redirect to another origin carries none of the request's credentials (httpx drops only
    `Authorization`)."""
    if _origin(after.url) != _origin(request.url):
        for name in [name for name in after.headers if is_sensitive(name)]:
            del after.headers[name]
    return after


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


def _check_headers(response: httpx.Response, limit: ReadLimit) -> None:
    """Refuse a body that is compressed, or announced larger than `limit`, before reading it.
    (The answer to a HEAD, a 204 or a 304 announces a body it does not have.)"""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise Refused(
            f"the server sent a compressed answer (Content-Encoding: {encoding}) though none"
            " was asked for; its size cannot be known before unpacking it"
        )
    if response.request.method == "HEAD" or response.status_code in (204, 304):
        return
    declared = response.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit.bytes:
        raise Refused(
            f"the response announces {int(declared):,} bytes, over the limit of"
            f" {limit.bytes:,} ({limit.name})"
        )


def _host_as_written(text: str) -> str | None:
    try:
        return urlsplit(text).hostname
    except ValueError:
        return None


def _port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


def _spelled(host: str, address: object) -> str:
    return "" if host == str(address) else f"{host} is {address}: "


@asynccontextmanager
async def open_outbound(
    policy: AddressPolicy, llm_base_url: str, per_workspace: int = PER_WORKSPACE
) -> AsyncIterator[Outbound]:
    """The app's two clients, closed when the block ends."""
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    async with (
        httpx.AsyncClient(
            transport=_guarded_transport(policy),
            headers=headers,
            cookies=_no_cookies(),
            timeout=None,
            trust_env=False,
        ) as guarded,
        httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(limits=_limits(), trust_env=False),
            headers=headers,
            cookies=_no_cookies(),
            timeout=None,
            trust_env=False,
        ) as trusted,
    ):
        yield Outbound(policy, guarded, trusted, httpx.URL(llm_base_url), Shares(per_workspace))


def _no_cookies() -> CookieJar:
    """A jar that keeps no cookie: the clients serve every workflow of every workspace, so a
    cookie one answer sets must never go out with another's request."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


def _limits() -> httpx.Limits:
    return httpx.Limits(
        max_connections=MAX_CONNECTIONS,
        max_keepalive_connections=KEEPALIVE_CONNECTIONS,
        keepalive_expiry=KEEPALIVE_S,
    )


def _guarded_transport(policy: AddressPolicy) -> httpx.AsyncHTTPTransport:
    """httpx's transport over a pool whose network backend is the guard. httpx 0.28 takes no
    network backend of its own, so its pool is replaced by one made with the same settings
    (`tests/outbound` fails if this ever stops guarding)."""
    transport = httpx.AsyncHTTPTransport(limits=_limits(), trust_env=False)
    limits = _limits()
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        http1=True,
        http2=False,
        network_backend=GuardedBackend(policy),
    )
    return transport
