"""Turning a video reference from a request into a local file, safely.

References: ``file:///abs/path`` or a path (absolute or relative to the allowed root),
``data:video/...;base64,...``, ``http(s)://...`` (opt-in). A path is readable only if,
after resolving symlinks, it lies inside the allowed root. A URL is fetched only if
every address its host resolves to is public (no private, loopback, link-local ...).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import mimetypes
import re
import socket
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

from llmvqa.serving.config import ServerConfig

MAX_REDIRECTS = 3
MAX_PATH_CHARS = 1024
_NOT_PUBLIC_V6 = (ipaddress.ip_network("2002::/16"),  # 6to4: reaches the IPv4 address it embeds
                  ipaddress.ip_network("2001::/32"),  # Teredo
                  ipaddress.ip_network("fec0::/10"),  # site-local (deprecated, still routed inside sites)
                  ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))  # NAT64


class ApiError(Exception):
    """An HTTP error answered in the OpenAI error shape."""

    TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
             404: "not_found_error", 413: "invalid_request_error", 415: "invalid_request_error",
             422: "invalid_request_error", 503: "server_busy",
             504: "timeout_error"}

    def __init__(self, status: int, message: str, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param

    def body(self) -> dict:
        kind = self.TYPES.get(self.status, "server_error")
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


def too_large(config: ServerConfig) -> ApiError:
    return ApiError(413, f"the video is larger than the server's limit of {config.max_upload_mb:g} MiB "
                         "(start the server with a larger --max-upload-mb)", "payload_too_large")


def resolve_local(ref: str, config: ServerConfig) -> Path:
    """A file path named by a request, checked to lie inside the allowed root (symlinks resolved)."""
    if config.allowed_root is None:
        raise ApiError(403, "this server reads no local files; upload the video, send a data: URL, "
                            "or start the server with --allowed-root DIR", "local_files_disabled")
    root = config.allowed_root
    text = ref
    if text.startswith("file://"):
        parsed = urlparse(text)
        if parsed.netloc not in ("", "localhost"):
            raise ApiError(403, f"file URL host {parsed.netloc!r} is not allowed", "path_not_allowed")
        text = unquote(parsed.path)
    if "\x00" in text:
        raise ApiError(400, "the video path contains a NUL byte", "invalid_path")
    if len(text) > MAX_PATH_CHARS:
        raise ApiError(400, f"the video path is longer than {MAX_PATH_CHARS} characters", "invalid_path")
    try:
        text.encode("utf-8")
        path = Path(text)
        candidate = path if path.is_absolute() else root / path
        resolved = candidate.resolve()
        exists = resolved.exists()
    except (RuntimeError, OSError, ValueError) as err:  # symlink loops, names too long, unpaired surrogates
        raise ApiError(400, f"the video path cannot be used ({type(err).__name__})", "invalid_path") from err
    if not resolved.is_relative_to(root):
        raise ApiError(403, "the video path is outside the server's allowed root", "path_not_allowed")
    if not exists:
        raise ApiError(404, f"no such video under the allowed root: {ref[:100]}", "video_not_found")
    if resolved.is_dir():  # a frame folder: every image in it must lie inside the root too
        for f in resolved.iterdir():
            if not f.resolve().is_relative_to(root):
                raise ApiError(403, "the frame folder links to files outside the server's allowed root",
                               "path_not_allowed")
    return resolved


def _suffix_for(mime: str) -> str:
    return {"video/mp4": ".mp4", "video/webm": ".webm", "video/quicktime": ".mov", "video/x-matroska": ".mkv",
            "image/gif": ".gif", "video/x-msvideo": ".avi"}.get(mime) or mimetypes.guess_extension(mime) or ".mp4"


def decode_data_url(url: str, config: ServerConfig, dest: Path) -> Path:
    """Write the bytes of a ``data:<mime>;base64,...`` URL to a file in ``dest``."""
    match = re.match(r"data:([\w.+-]+/[\w.+-]+)?((?:;[\w=.+-]+)*?);base64,", url[:200])
    if not match:
        raise ApiError(400, "a data: URL must look like data:video/mp4;base64,<bytes>", "invalid_data_url")
    payload = url[match.end():]
    if len(payload) * 3 // 4 > config.max_upload_bytes + 3:
        raise too_large(config)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as err:
        raise ApiError(400, "the data: URL is not valid base64", "invalid_data_url") from err
    if len(data) > config.max_upload_bytes:
        raise too_large(config)
    path = dest / f"upload{_suffix_for(match.group(1) or 'video/mp4')}"
    path.write_bytes(data)
    return path


def check_public_host(host: str, port: int | None = None) -> list[str]:
    """Addresses of ``host``; ApiError 403 if any is not a public unicast address."""
    if not host:
        raise ApiError(400, "the video URL has no host", "invalid_url")
    try:
        infos = socket.getaddrinfo(host, port or 443, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as err:
        raise ApiError(422, f"cannot resolve the video URL's host {host!r}", "unresolvable_host") from err
    addresses = sorted({info[4][0] for info in infos})
    for addr in addresses:
        if not is_public(ipaddress.ip_address(addr.split("%")[0])):
            raise ApiError(403, f"the video URL's host {host!r} resolves to a non-public address ({addr}); refused",
                           "private_address")
    return addresses


def is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """A global unicast address that does not tunnel to another one (6to4, Teredo, NAT64, site-local refused)."""
    ip = getattr(ip, "ipv4_mapped", None) or ip
    if ip.version == 6 and any(ip in net for net in _NOT_PUBLIC_V6):
        return False
    return not (not ip.is_global or ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
                or ip.is_reserved or ip.is_unspecified)


def pinned_client(addresses: list[str], timeout: float):
    """An httpx client whose connections go to ``addresses[0]`` whatever the host name resolves to later:
    the address that was checked is the address that is used (no DNS rebinding between check and
    connect). The URL's host still names the server in the Host header, TLS SNI and certificate check."""
    import httpcore
    import httpx

    class Pinned(httpcore.SyncBackend):
        def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
            return super().connect_tcp(addresses[0], port, timeout, local_address, socket_options)

    transport = httpx.HTTPTransport()
    transport._pool._network_backend = Pinned()  # httpcore's documented backend hook, reached through httpx
    return httpx.Client(transport=transport, timeout=timeout, follow_redirects=False)


def download(url: str, config: ServerConfig, dest: Path) -> Path:
    """Fetch an http(s) video URL (public hosts only, size-capped, redirects re-checked)."""
    import httpx

    if not config.allow_urls:
        raise ApiError(403, "this server does not fetch URLs (start it with --allow-urls)", "urls_disabled")
    for _ in range(MAX_REDIRECTS + 1):
        try:
            parsed = urlparse(url)
            port = parsed.port
            host = parsed.hostname or ""
        except ValueError as err:  # port out of range, malformed brackets ...
            raise ApiError(400, f"the video URL is malformed ({err})", "invalid_url") from err
        if parsed.scheme not in ("http", "https"):
            raise ApiError(400, f"unsupported URL scheme {parsed.scheme!r}", "invalid_url")
        addresses = check_public_host(host, port)
        suffix = Path(parsed.path).suffix.lower() if re.fullmatch(r"\.\w{2,5}", Path(parsed.path).suffix) else ".mp4"
        path = dest / f"download{suffix}"
        try:
            with pinned_client(addresses, min(30.0, config.timeout_s)) as client, client.stream("GET", url) as resp:
                if resp.is_redirect and "location" in resp.headers:
                    url = urljoin(url, resp.headers["location"])
                    continue
                if resp.status_code != 200:
                    raise ApiError(422, f"fetching the video URL gave HTTP {resp.status_code}", "fetch_failed")
                size = 0
                with path.open("wb") as f:
                    for chunk in resp.iter_bytes():
                        size += len(chunk)
                        if size > config.max_upload_bytes:
                            raise too_large(config)
                        f.write(chunk)
            return path
        except httpx.HTTPError as err:
            raise ApiError(422, f"fetching the video URL failed ({type(err).__name__})", "fetch_failed") from err
    raise ApiError(422, f"the video URL redirected more than {MAX_REDIRECTS} times", "fetch_failed")


def fetch_video(ref: str, config: ServerConfig, dest: Path) -> Path:
    """Any supported video reference -> a local file (inside ``dest`` unless it is under the allowed root)."""
    if not isinstance(ref, str) or not ref.strip():
        raise ApiError(400, "the video reference is empty", "invalid_video_reference")
    ref = ref.strip()
    if ref.startswith("data:"):
        return decode_data_url(ref, config, dest)
    try:
        scheme = urlparse(ref).scheme.lower()
    except ValueError as err:
        raise ApiError(400, f"the video reference is malformed ({err})", "invalid_video_reference") from err
    if scheme in ("http", "https"):
        return download(ref, config, dest)
    if scheme in ("", "file") or re.fullmatch(r"[a-zA-Z]", scheme):
        return resolve_local(ref, config)
    raise ApiError(400, f"unsupported video reference scheme {scheme!r} (use file://, a path, data: or https://)",
                   "invalid_video_reference")
