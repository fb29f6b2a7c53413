"""The ``http`` toolkit: plain HTTP requests with bounds on time, size and redirects.

Only ``http://`` and ``https://`` URLs are fetched. The whole request (connect, redirects,
body) must finish within ``timeout``; the body is streamed and reading stops at
``max_bytes`` (the output says it was truncated); more than ``max_redirects`` redirects is
an error. 4xx and 5xx answers are returned as they are: the status line says what happened.

Loopback, private, link-local, shared, reserved and multicast addresses (``127.0.0.1``,
``10.0.0.0/8``, ``169.254.169.254`` ...) are refused unless ``allow_private`` allows them, as
``mcp-server-fetch`` does: a model's request must not reach the services of the machine or
the network it runs on. The check is made on the addresses the host name resolves to, for
the first request and for every redirect, and again on the address actually connected to
(a name that resolves differently the second time gains nothing).

Config (``toolkits: http:`` in ``workbench.yaml``; all optional):

- ``timeout`` (15): seconds for the whole request.
- ``max_bytes`` (1000000): the most body bytes read.
- ``max_redirects`` (5): redirects followed before giving up.
- ``trust_env`` (true): honour ``HTTP(S)_PROXY`` and friends from the environment.
- ``allow_private`` (false): ``true`` allows every such address; a list allows those
  networks (``["127.0.0.1", "10.0.0.0/8", "fd00::/8"]``) and no others.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from workbench.tools import FunctionToolkit, ToolError, tool

__all__ = ["HttpToolkit", "PrivateAddressError"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class PrivateAddressError(ToolError):
    """The request would reach an address ``allow_private`` does not allow."""


def _kind(ip: IPAddress) -> str | None:
    """What makes ``ip`` off limits (``None`` for a public address)."""
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        ip = mapped
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "reserved"
    return None


def _networks(setting: Any) -> bool | list[Network]:
    """``allow_private`` as ``True`` (everything), ``False`` or a list of networks.

    Raises:
        ValueError: not a bool or a list of addresses/networks.
    """
    if isinstance(setting, bool) or setting is None:
        return bool(setting)
    if isinstance(setting, str) or not isinstance(setting, Iterable):
        raise ValueError(
            f"allow_private must be true, false or a list of networks, got {setting!r}"
        )
    out: list[Network] = []
    for item in setting:
        try:
            out.append(ipaddress.ip_network(str(item), strict=False))
        except ValueError as exc:
            raise ValueError(f"allow_private: {item!r} is not an address or a network") from exc
    return out


class _Guard:
    """Decides which resolved addresses a request may reach."""

    def __init__(self, allow: bool | list[Network]) -> None:
        self.allow = allow

    def refused(self, ip: IPAddress) -> str | None:
        """Why ``ip`` may not be reached (``None``: it may)."""
        kind = _kind(ip)
        if kind is None or self.allow is True:
            return None
        if self.allow and any(ip in net for net in self.allow):
            return None
        return kind

    async def check_host(self, host: str, port: int) -> list[str]:
        """The addresses ``host`` resolves to, all of them allowed.

        Raises:
            PrivateAddressError: one of them is not (naming it and what it is).
            ToolError: the name does not resolve.
        """
        try:
            literal: IPAddress | None = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            literal = None
        if literal is not None:
            addrs = [str(literal)]
        else:
            loop = asyncio.get_running_loop()
            try:
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise ToolError(f"cannot resolve {host!r}: {exc.strerror or exc}") from None
            addrs = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for addr in addrs:
            why = self.refused(ipaddress.ip_address(addr.split("%", 1)[0]))
            if why is not None:
                via = "" if literal is not None else f" ({host} resolves to {addr})"
                raise PrivateAddressError(
                    f"refused: {addr} is a {why} address{via}; requests to loopback, private "
                    "and link-local addresses need allow_private under toolkits: http:"
                )
        return addrs


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses the guard allows: the host
    is resolved here, checked, and the connection made to that checked address."""

    def __init__(self, guard: _Guard) -> None:
        self._guard = guard
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addrs = await self._guard.check_host(host, port)
        last: Exception | None = None
        for addr in addrs:
            try:
                return await self._inner.connect_tcp(
                    addr, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise last or httpcore.ConnectError(f"cannot connect to {host}:{port}")

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not reached by the http toolkit")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


_TEXTUAL = ("text/", "json", "xml", "javascript", "x-www-form-urlencoded", "yaml", "csv")


def _check_url(url: str) -> None:
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https"):
        shown = f"{parts.scheme!r}" if parts.scheme else "none"
        raise ToolError(f"only http and https URLs can be fetched (scheme: {shown}): {url!r}")
    if not parts.hostname:
        raise ToolError(f"the URL has no host: {url!r}")


class HttpToolkit(FunctionToolkit):
    """HTTP requests: ``get`` and ``post``. Each answer is a status line, the content type
    and the body as text (cut at ``max_bytes``)."""

    def __init__(self, name: str, config: dict[str, Any], root: Path) -> None:
        super().__init__(name, config, root)
        self.timeout = float(config.get("timeout", 15.0))
        """Seconds for the whole request."""
        self.max_bytes = int(config.get("max_bytes", 1_000_000))
        """The most body bytes read."""
        self.max_redirects = int(config.get("max_redirects", 5))
        """Redirects followed before giving up."""
        self.trust_env = bool(config.get("trust_env", True))
        """Whether proxy settings come from the environment."""
        self.guard = _Guard(_networks(config.get("allow_private", False)))
        """Which loopback, private and link-local addresses may be reached."""
        backstop = self.timeout + 5.0  # the request enforces its own timeout
        self.add(tool(name="get", timeout=backstop)(self.get))
        with warnings.catch_warnings():
            # The argument is called ``json`` (what a model expects); pydantic warns that
            # the name shadows BaseModel.json in the generated schema model, harmlessly.
            warnings.filterwarnings("ignore", r'Field name "json"', UserWarning)
            self.add(tool(name="post", timeout=backstop)(self.post))

    async def get(self, url: str, headers: dict[str, str] | None = None) -> str:
        """Fetch a URL with GET; returns the status, the content type and the body text.

        Args:
            url: An http:// or https:// URL.
            headers: Extra request headers.
        """
        return await self._request("GET", url, headers=headers)

    async def post(
        self,
        url: str,
        body: str | None = None,
        json: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> str:
        """Send a POST request; returns the status, the content type and the body text.

        Give ``json`` for a JSON body, or ``body`` for raw text (set its Content-Type in
        ``headers``), not both.

        Args:
            url: An http:// or https:// URL.
            body: A raw request body.
            json: A JSON object to send as the body (Content-Type: application/json).
            headers: Extra request headers.
        """
        if body is not None and json is not None:
            raise ToolError("give body or json, not both")
        return await self._request("POST", url, headers=headers, content=body, json_body=json)

    async def _request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None,
        content: str | None = None,
        json_body: dict[str, Any] | None = None,
    ) -> str:
        _check_url(url)

        async def check(request: httpx.Request) -> None:
            # Every request, the first and each redirect: through a proxy this is the only
            # check (the proxy resolves the name); without one the connection checks again.
            await self.guard.check_host(request.url.host, request.url.port or 443)

        try:
            async with asyncio.timeout(self.timeout):
                async with httpx.AsyncClient(
                    timeout=self.timeout,
                    follow_redirects=True,
                    max_redirects=self.max_redirects,
                    trust_env=self.trust_env,
                    event_hooks={"request": [check]},
                    **self._transport(),
                ) as client:
                    async with client.stream(
                        method, url.strip(), headers=headers, content=content, json=json_body
                    ) as resp:
                        data, truncated = await self._read_capped(resp)
                        return self._describe(resp, url, data, truncated)
        except TimeoutError:
            raise ToolError(f"{method} {url} timed out after {self.timeout:g}s") from None
        except ToolError as exc:
            raise ToolError(f"{method} {url}: {exc}") from None
        except httpx.TooManyRedirects:
            raise ToolError(
                f"{method} {url}: too many redirects (more than {self.max_redirects})"
            ) from None
        except httpx.TimeoutException:
            raise ToolError(f"{method} {url} timed out after {self.timeout:g}s") from None
        except httpx.UnsupportedProtocol as exc:
            raise ToolError(f"{method} {url}: {exc} (only http and https)") from None
        except httpx.InvalidURL as exc:
            raise ToolError(f"invalid URL {url!r}: {exc}") from None
        except httpx.HTTPError as exc:
            raise ToolError(f"{method} {url} failed: {type(exc).__name__}: {exc}") from None

    def _transport(self) -> dict[str, Any]:
        """The client's transport: one that connects only to allowed addresses, unless
        requests go through a proxy from the environment (which resolves names itself)."""
        if self.guard.allow is True:
            return {}
        if self.trust_env:
            import urllib.request

            if any(k in ("http", "https", "all") for k in urllib.request.getproxies()):
                return {}
        transport = httpx.AsyncHTTPTransport(trust_env=False)
        pool = transport._pool  # httpx offers no network_backend argument
        pool._network_backend = _GuardedBackend(self.guard)
        return {"transport": transport}

    async def _read_capped(self, resp: httpx.Response) -> tuple[bytes, bool]:
        buf = bytearray()
        async for chunk in resp.aiter_bytes():
            room = self.max_bytes - len(buf)
            if len(chunk) > room:
                buf += chunk[:room]
                return bytes(buf), True
            buf += chunk
        return bytes(buf), False

    def _describe(self, resp: httpx.Response, url: str, data: bytes, truncated: bool) -> str:
        content_type = resp.headers.get("content-type", "")
        lines = [f"{resp.http_version} {resp.status_code} {resp.reason_phrase}".strip()]
        lines.append(f"content-type: {content_type or '(none)'}")
        if str(resp.url) != url.strip():
            lines.append(f"url: {resp.url}")
        textual = any(t in content_type.lower() for t in _TEXTUAL)
        if data and not textual and b"\x00" in data[:8192]:
            body = f"(binary body, {len(data)} bytes{' or more' if truncated else ''}, not shown)"
        else:
            try:
                body = data.decode(resp.charset_encoding or "utf-8", errors="replace")
            except LookupError:  # a charset Python does not know
                body = data.decode("utf-8", errors="replace")
        lines.append("")
        lines.append(body)
        if truncated:
            lines.append(f"[truncated: the body is longer than {self.max_bytes} bytes]")
        return "\n".join(lines)
