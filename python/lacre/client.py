"""The lacre client, sync (:class:`Client`) and async (:class:`AsyncClient`).

Both behave as the Rust client does (SPEC §6.4): every reply verified and
judged by the trust rule (§6.5); transport failures retried with the same
``request_id`` and a fresh nonce only where a repeat is harmless; jobs
long-polled where the server advertises it, polled with backoff otherwise.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union
from urllib.parse import urlsplit

import httpx

from ._http import AsyncHTTP, Broken, ConnectFailed
from .errors import OutcomeUnknownError, ServerError, TransportError, UsageError, VerificationError
from .wire import (
    DEFAULT_MAX_SKEW_MS,
    Key,
    Sent,
    Verifier,
    canonical,
    parse_strict,
    sign_envelope,
    verify_reply,
)

# Built-in tools that may run twice without harm (reads, and cancel).
_IDEMPOTENT = {"server_identity", "poll_job", "list_jobs", "cancel_job"}
_RETRIES = 3
# What a peer can make the client hold (SPEC §6.4): a reply, and the
# unsigned key document fingerprint trust reads.
MAX_REPLY_BYTES = 16 << 20
MAX_WELL_KNOWN_BYTES = 64 << 10
_LONG_POLL_MS = 25_000


def _read_capped(r: httpx.Response, cap: int) -> bytes:
    """The body of `r`, or a TransportError once it passes `cap` bytes
    (nothing past the cap is read)."""
    length = r.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > cap:
        raise TransportError(f"reply larger than {cap} bytes")
    out = bytearray()
    for chunk in r.iter_bytes():
        out += chunk
        if len(out) > cap:
            raise TransportError(f"reply larger than {cap} bytes")
    return bytes(out)


@dataclass(frozen=True)
class Job:
    """A job started by a long-running tool."""

    id: str


@dataclass(frozen=True)
class Progress:
    """A job's progress, as a poll reports it."""

    job_id: str
    state: str
    fraction: Optional[float]
    message: Optional[str]
    #: The job's version: pass it back as ``since_version`` (None from
    #: servers that do not report one, such as the seed's).
    version: Optional[int] = None


def _read_secret_file(path: Path) -> bytes:
    text = path.read_text()
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if text.startswith("hex:"):
        return bytes.fromhex(text[4:].strip())
    return text.encode()


def _load_toml(path: Path) -> Dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - older Pythons
        import tomli as tomllib
    with path.open("rb") as f:
        data: Dict[str, Any] = tomllib.load(f)
    return data


_PROFILE_KEYS = {
    "url", "client_id", "server_id", "secret", "secret_hex", "secret_file", "key_file",
    "server_secret", "server_secret_hex", "server_secret_file", "server_public_key",
    "server_fingerprint",
}


class _Core:
    """What the sync and async clients share: keys, envelopes, judging."""

    def __init__(
        self,
        url: str,
        *,
        client_id: str,
        server_id: str,
        secret: Union[bytes, str, None] = None,
        key: Optional[Key] = None,
        server_secret: Union[bytes, str, None] = None,
        server_public_key: Optional[str] = None,
        server_fingerprint: Optional[str] = None,
        timeout: float = 30.0,
        max_skew_ms: int = DEFAULT_MAX_SKEW_MS,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"url {url!r} is not http(s)")
        if (secret is None) == (key is None):
            raise UsageError("give exactly one of secret (HMAC) and key")
        self.key = key if key is not None else Key.hmac(secret or b"")
        trusts = [x for x in (server_secret, server_public_key, server_fingerprint) if x is not None]
        if len(trusts) != 1:
            raise UsageError(
                "give exactly one of server_secret, server_public_key and server_fingerprint"
            )
        self.server: Optional[Verifier] = None
        self.pin: Optional[str] = None
        if server_secret is not None:
            self.server = Verifier.hmac(server_secret)
        elif server_public_key is not None:
            self.server = Verifier.ed25519(server_public_key)
        else:
            pin = (server_fingerprint or "").strip()
            if len(pin) < 32 or len(pin) > 64 or any(c not in "0123456789abcdef" for c in pin):
                raise UsageError("a fingerprint pin is 32 to 64 lowercase hex digits")
            self.pin = pin
        self.url = url
        self.client_id = client_id
        self.server_id = server_id
        self.timeout = timeout
        self.max_skew_ms = max_skew_ms
        self.long_poll: Optional[bool] = None

    def __repr__(self) -> str:
        return f"<lacre client {self.client_id!r} -> {self.server_id!r} at {self.url}>"

    def well_known_url(self) -> str:
        u = httpx.URL(self.url)
        return str(u.copy_with(path="/.well-known/lacre.json", query=None))

    def trust_document(self, doc: Any) -> None:
        """Pins the key of ``/.well-known/lacre.json`` if it matches the pin."""
        if not isinstance(doc, dict) or doc.get("server_id") != self.server_id:
            raise VerificationError("the server's well-known document names another server_id")
        pk = doc.get("public_key_hex")
        if not isinstance(pk, str):
            raise VerificationError("the server publishes no Ed25519 key: it cannot be pinned")
        verifier = Verifier.ed25519(pk)
        if not verifier.fingerprint_sha256().startswith(self.pin or "-"):
            raise VerificationError("the server's key does not have the pinned fingerprint")
        self.server = verifier

    def envelope(self, tool: str, args: Dict[str, Any], request_id: Optional[str]) -> Tuple[bytes, Sent]:
        env = sign_envelope(
            self.key, client_id=self.client_id, server_id=self.server_id,
            tool=tool, args=args, request_id=request_id,
        )
        body = canonical(env)
        return body, Sent(body=body, request_id=env["request_id"], server_id=self.server_id)

    def judge(self, status: int, body: bytes, sent: Sent) -> Dict[str, Any]:
        assert self.server is not None
        try:
            return verify_reply(body, self.server, sent, max_skew_ms=self.max_skew_ms)
        except VerificationError as e:
            # A 5xx whose body is not even a reply: a proxy's, not the server's.
            if status >= 500 and not body.lstrip().startswith(b"{"):
                raise TransportError(f"HTTP {status} without a lacre reply") from e
            raise

    @staticmethod
    def retryable(tool: str, starting: bool, connected: bool) -> bool:
        return tool in _IDEMPOTENT or starting or not connected

    @staticmethod
    def job_view(resp: Dict[str, Any], job: Job) -> Union[Progress, Dict[str, Any]]:
        result = resp.get("result") or {}
        if resp["status"] == "done":
            return dict(result)
        fraction = result.get("progress")
        return Progress(
            job_id=str(result.get("job_id", job.id)),
            state=str(result.get("state", "running")),
            fraction=float(fraction) if isinstance(fraction, (int, float)) else None,
            message=result.get("message") if isinstance(result.get("message"), str) else None,
            version=result["version"] if type(result.get("version")) is int else None,
        )

    @staticmethod
    def poll_args(job: Job, wait_ms: Optional[int], since_version: Optional[int]) -> Dict[str, Any]:
        args: Dict[str, Any] = {"job_id": job.id}
        if wait_ms is not None:
            args["wait_ms"] = wait_ms
        if since_version is not None:
            args["since_version"] = since_version
        return args


def _profile_kwargs(path: Optional[Union[str, Path]]) -> Dict[str, Any]:
    """Client arguments from a profile file (as the CLI reads it, §11.2) and
    the environment (``LACRE_URL``, ``LACRE_CLIENT_ID``, ``LACRE_SERVER_ID``,
    ``LACRE_SECRET``, ``LACRE_SERVER_SECRET``)."""
    p = Path(path) if path is not None else Path("lacre-client.toml")
    data = _load_toml(p) if p.exists() else {}
    if path is not None and not p.exists():
        raise UsageError(f"no profile at {p}")
    unknown = set(data) - _PROFILE_KEYS
    if unknown:
        raise UsageError(f"{p}: unknown keys {sorted(unknown)}")
    base = p.parent
    env = os.environ
    kw: Dict[str, Any] = {
        "url": env.get("LACRE_URL") or data.get("url"),
        "client_id": env.get("LACRE_CLIENT_ID") or data.get("client_id"),
        "server_id": env.get("LACRE_SERVER_ID") or data.get("server_id"),
    }
    if env.get("LACRE_SECRET"):
        kw["secret"] = env["LACRE_SECRET"].encode()
    elif "key_file" in data:
        kw["key"] = Key.ed25519((base / data["key_file"]).read_text())
    elif "secret" in data:
        kw["secret"] = data["secret"].encode()
    elif "secret_hex" in data:
        kw["secret"] = bytes.fromhex(data["secret_hex"])
    elif "secret_file" in data:
        kw["secret"] = _read_secret_file(base / data["secret_file"])
    if env.get("LACRE_SERVER_SECRET"):
        kw["server_secret"] = env["LACRE_SERVER_SECRET"].encode()
    elif "server_public_key" in data:
        kw["server_public_key"] = data["server_public_key"]
    elif "server_secret" in data:
        kw["server_secret"] = data["server_secret"].encode()
    elif "server_secret_hex" in data:
        kw["server_secret"] = bytes.fromhex(data["server_secret_hex"])
    elif "server_secret_file" in data:
        kw["server_secret"] = _read_secret_file(base / data["server_secret_file"])
    elif "server_fingerprint" in data:
        kw["server_fingerprint"] = data["server_fingerprint"]
    for need in ("url", "client_id", "server_id"):
        if not kw.get(need):
            raise UsageError(f"no {need}: set it in {p} or LACRE_{need.upper()}")
    return kw


class Client:
    """A synchronous lacre client over HTTP.

    >>> client = Client("http://127.0.0.1:8790/mcp", client_id="client-001",
    ...                 secret=b"client_secret_key_456", server_id="mcp-server-001",
    ...                 server_secret=b"server_secret_key_123")   # doctest: +SKIP
    >>> client.call("batch_sum", {"numbers": [10, 20, 30]})       # doctest: +SKIP
    {'count': 3, 'total': 60.0}
    """

    def __init__(self, url: str, **kwargs: Any) -> None:
        self._core = _Core(url, **kwargs)
        self._http = httpx.Client(timeout=self._core.timeout)

    @classmethod
    def from_profile(cls, path: Optional[Union[str, Path]] = None, **overrides: Any) -> "Client":
        """From a profile file (default ``./lacre-client.toml``) and the
        environment; keyword arguments override both (e.g. ``url=``)."""
        kw = {**_profile_kwargs(path), **overrides}
        return cls(kw.pop("url"), **kw)

    def __repr__(self) -> str:
        return repr(self._core)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _trust(self) -> None:
        if self._core.server is None:
            try:
                with self._http.stream("GET", self._core.well_known_url()) as r:
                    doc = json.loads(_read_capped(r, MAX_WELL_KNOWN_BYTES))
            except (httpx.HTTPError, ValueError) as e:
                raise TransportError(f"cannot fetch the server's key: {e}") from e
            self._core.trust_document(doc)

    def _send(self, tool: str, args: Dict[str, Any], *, starting: bool = False, extra_wait: float = 0.0) -> Dict[str, Any]:
        self._trust()
        core = self._core
        request_id: Optional[str] = None
        delay = 0.1
        for attempt in range(_RETRIES + 1):
            body, sent = core.envelope(tool, args, request_id)
            request_id = sent.request_id
            connected = True
            try:
                with self._http.stream(
                    "POST", core.url, content=body, headers={"content-type": "application/json"},
                    timeout=core.timeout + extra_wait,
                ) as r:
                    content = _read_capped(r, MAX_REPLY_BYTES)
                return core.judge(r.status_code, content, sent)
            except (httpx.ConnectError, httpx.ConnectTimeout) as e:
                connected, err = False, TransportError(f"cannot connect: {e}")
            except httpx.HTTPError as e:
                err = TransportError(str(e) or type(e).__name__)
            except TransportError as e:
                err = e
            if attempt == _RETRIES or not core.retryable(tool, starting, connected):
                if connected and not core.retryable(tool, starting, connected):
                    raise OutcomeUnknownError(f"{err}; the request may have reached the server") from err
                raise err
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")

    def call(self, tool: str, args: Optional[Dict[str, Any]] = None, *, wait: bool = False,
             on_progress: Optional[Callable[[Progress], None]] = None) -> Union[Dict[str, Any], Job]:
        """Calls a tool: its result, or the :class:`Job` of a long-running tool
        (its result with ``wait=True``)."""
        resp = self._send(tool, args or {})
        if resp["status"] == "accepted":
            job = Job(str((resp.get("result") or {})["job_id"]))
            return self.wait(job, on_progress=on_progress) if wait else job
        return dict(resp.get("result") or {})

    def start(self, tool: str, args: Optional[Dict[str, Any]] = None) -> Job:
        """Starts a long-running tool (a lost reply is retried: the server's
        idempotency returns the job the first attempt created)."""
        resp = self._send(tool, args or {}, starting=True)
        if resp["status"] != "accepted":
            raise VerificationError(f"{tool} answered {resp['status']!r}, not accepted")
        return Job(str((resp.get("result") or {})["job_id"]))

    def identity(self) -> Dict[str, Any]:
        return dict(self._send("server_identity", {}).get("result") or {})

    def tools(self) -> List[Dict[str, Any]]:
        tools = self.identity().get("capabilities", {}).get("tools", [])
        return [t if isinstance(t, dict) else {"name": t} for t in tools]

    def jobs(self, state: Optional[str] = None, limit: Optional[int] = None) -> List[Dict[str, Any]]:
        args: Dict[str, Any] = {}
        if state is not None:
            args["state"] = state
        if limit is not None:
            args["limit"] = limit
        return list((self._send("list_jobs", args).get("result") or {}).get("jobs", []))

    def cancel(self, job: Job) -> str:
        return str((self._send("cancel_job", {"job_id": job.id}).get("result") or {}).get("state"))

    def poll(self, job: Job, wait_ms: Optional[int] = None,
             since_version: Optional[int] = None) -> Union[Progress, Dict[str, Any]]:
        """The job now; with ``wait_ms``, held until it changes. With the
        ``version`` of the last :class:`Progress` seen as ``since_version``,
        a change since then is answered at once and none is shown twice."""
        args = _Core.poll_args(job, wait_ms, since_version)
        resp = self._send("poll_job", args, extra_wait=(wait_ms or 0) / 1000)
        return _Core.job_view(resp, job)

    def _long_poll(self) -> Optional[bool]:
        if self._core.long_poll is None:
            try:
                caps = self.identity().get("capabilities", {})
                self._core.long_poll = caps.get("long_poll") is True
            except (ServerError, VerificationError):
                self._core.long_poll = False
            except (TransportError, OutcomeUnknownError):
                return None
        return self._core.long_poll

    def wait(self, job: Job, on_progress: Optional[Callable[[Progress], None]] = None) -> Dict[str, Any]:
        """Waits for a job; its result (a failed or cancelled job raises
        :class:`ServerError` with code ``job_failed`` or ``job_cancelled``)."""
        long_poll = self._long_poll() is not False
        delay = 0.2
        since: Optional[int] = None
        while True:
            try:
                view = self.poll(job, _LONG_POLL_MS if long_poll else None, since)
            except ServerError as e:
                if long_poll and e.code not in ("job_failed", "job_cancelled", "unknown_job"):
                    long_poll = False
                    continue
                raise
            if not isinstance(view, Progress):
                return view
            since = view.version
            if on_progress is not None:
                on_progress(view)
            if not long_poll:
                time.sleep(delay)
                delay = min(delay * 1.5, 2.0)


class AsyncClient:
    """The asynchronous client: the same methods, awaited."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        self._core = _Core(url, **kwargs)
        self._http = AsyncHTTP(url)
        parts = urlsplit(url)
        self._path = parts.path + (f"?{parts.query}" if parts.query else "")

    @classmethod
    def from_profile(cls, path: Optional[Union[str, Path]] = None, **overrides: Any) -> "AsyncClient":
        """As :meth:`Client.from_profile`."""
        kw = {**_profile_kwargs(path), **overrides}
        return cls(kw.pop("url"), **kw)

    def __repr__(self) -> str:
        return repr(self._core)

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _trust(self) -> None:
        if self._core.server is None:
            try:
                _, raw = await self._http.request(
                    "GET", "/.well-known/lacre.json", b"", self._core.timeout, MAX_WELL_KNOWN_BYTES
                )
                doc = parse_strict(raw)
            except (ConnectFailed, Broken, ValueError) as e:
                raise TransportError(f"cannot fetch the server's key: {e}") from e
            self._core.trust_document(doc)

    async def _send(self, tool: str, args: Dict[str, Any], *, starting: bool = False, extra_wait: float = 0.0) -> Dict[str, Any]:
        await self._trust()
        core = self._core
        request_id: Optional[str] = None
        delay = 0.1
        for attempt in range(_RETRIES + 1):
            body, sent = core.envelope(tool, args, request_id)
            request_id = sent.request_id
            connected = True
            try:
                status, content = await self._http.request(
                    "POST", self._path, body, core.timeout + extra_wait
                )
                return core.judge(status, content, sent)
            except ConnectFailed as e:
                connected, err = False, TransportError(str(e))
            except Broken as e:
                err = TransportError(str(e))
            except TransportError as e:
                err = e
            if attempt == _RETRIES or not core.retryable(tool, starting, connected):
                if connected and not core.retryable(tool, starting, connected):
                    raise OutcomeUnknownError(f"{err}; the request may have reached the server") from err
                raise err
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")

    async def call(self, tool: str, args: Optional[Dict[str, Any]] = None, *, wait: bool = False,
                   on_progress: Optional[Callable[[Progress], None]] = None) -> Union[Dict[str, Any], Job]:
        resp = await self._send(tool, args or {})
        if resp["status"] == "accepted":
            job = Job(str((resp.get("result") or {})["job_id"]))
            return await self.wait(job, on_progress=on_progress) if wait else job
        return dict(resp.get("result") or {})

    async def start(self, tool: str, args: Optional[Dict[str, Any]] = None) -> Job:
        resp = await self._send(tool, args or {}, starting=True)
        if resp["status"] != "accepted":
            raise VerificationError(f"{tool} answered {resp['status']!r}, not accepted")
        return Job(str((resp.get("result") or {})["job_id"]))

    async def identity(self) -> Dict[str, Any]:
        return dict((await self._send("server_identity", {})).get("result") or {})

    async def tools(self) -> List[Dict[str, Any]]:
        tools = (await self.identity()).get("capabilities", {}).get("tools", [])
        return [t if isinstance(t, dict) else {"name": t} for t in tools]

    async def jobs(self, state: Optional[str] = None, limit: Optional[int] = None) -> List[Dict[str, Any]]:
        args: Dict[str, Any] = {}
        if state is not None:
            args["state"] = state
        if limit is not None:
            args["limit"] = limit
        return list(((await self._send("list_jobs", args)).get("result") or {}).get("jobs", []))

    async def cancel(self, job: Job) -> str:
        resp = await self._send("cancel_job", {"job_id": job.id})
        return str((resp.get("result") or {}).get("state"))

    async def poll(self, job: Job, wait_ms: Optional[int] = None,
                   since_version: Optional[int] = None) -> Union[Progress, Dict[str, Any]]:
        args = _Core.poll_args(job, wait_ms, since_version)
        resp = await self._send("poll_job", args, extra_wait=(wait_ms or 0) / 1000)
        return _Core.job_view(resp, job)

    async def _long_poll(self) -> Optional[bool]:
        if self._core.long_poll is None:
            try:
                caps = (await self.identity()).get("capabilities", {})
                self._core.long_poll = caps.get("long_poll") is True
            except (ServerError, VerificationError):
                self._core.long_poll = False
            except (TransportError, OutcomeUnknownError):
                return None
        return self._core.long_poll

    async def wait(self, job: Job, on_progress: Optional[Callable[[Progress], None]] = None) -> Dict[str, Any]:
        long_poll = (await self._long_poll()) is not False
        delay = 0.2
        since: Optional[int] = None
        while True:
            try:
                view = await self.poll(job, _LONG_POLL_MS if long_poll else None, since)
            except ServerError as e:
                if long_poll and e.code not in ("job_failed", "job_cancelled", "unknown_job"):
                    long_poll = False
                    continue
                raise
            if not isinstance(view, Progress):
                return view
            since = view.version
            if on_progress is not None:
                on_progress(view)
            if not long_poll:
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, 2.0)
