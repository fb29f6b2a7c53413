"""The ``http`` toolkit: plain HTTP requests with bounds on time, size and redirects.

Only ``http://`` and ``https://`` URLs are fetched. The whole request (connect, redirects,
body) must finish within ``timeout``; the body is streamed and reading stops at
``max_bytes`` (the output says it was truncated); more than ``max_redirects`` redirects is
an error. 4xx and 5xx answers are returned as they are: the status line says what happened.

Config (``tools: http:`` in ``workbench.yaml``; all optional):

- ``timeout`` (15): seconds for the whole request.
- ``max_bytes`` (1000000): the most body bytes read.
- ``max_redirects`` (5): redirects followed before giving up.
- ``trust_env`` (true): honour ``HTTP(S)_PROXY`` and friends from the environment.
"""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from workbench.tools import FunctionToolkit, ToolError, tool

__all__ = ["HttpToolkit"]

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
        try:
            async with asyncio.timeout(self.timeout):
                async with httpx.AsyncClient(
                    timeout=self.timeout,
                    follow_redirects=True,
                    max_redirects=self.max_redirects,
                    trust_env=self.trust_env,
                ) as client:
                    async with client.stream(
                        method, url.strip(), headers=headers, content=content, json=json_body
                    ) as resp:
                        data, truncated = await self._read_capped(resp)
                        return self._describe(resp, url, data, truncated)
        except TimeoutError:
            raise ToolError(f"{method} {url} timed out after {self.timeout:g}s") from None
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
