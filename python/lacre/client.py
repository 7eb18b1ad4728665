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


def _profile_secret(data: Dict[str, Any], name: str, base: Path) -> Optional[bytes]:
    """An HMAC secret a profile gives as ``name`` (text), ``name_hex`` or
    ``name_file`` (relative to the profile), or None."""
    if name in data:
        return data[name].encode()  # type: ignore[no-any-return]
    if f"{name}_hex" in data:
        return bytes.fromhex(data[f"{name}_hex"])
    if f"{name}_file" in data:
        return _read_secret_file(base / data[f"{name}_file"])
    return None


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

    def learn_long_poll(self, identity: Dict[str, Any]) -> None:
        """Whether the server holds polls (``wait_ms``), from its identity."""
        self.long_poll = identity.get("capabilities", {}).get("long_poll") is True

    @staticmethod
    def accepted_job(resp: Dict[str, Any]) -> Optional[Job]:
        """The job of an ``accepted`` reply, or None for any other status."""
        if resp["status"] != "accepted":
            return None
        return Job(str((resp.get("result") or {})["job_id"]))

    @staticmethod
    def started_job(tool: str, resp: Dict[str, Any]) -> Job:
        job = _Core.accepted_job(resp)
        if job is None:
            raise VerificationError(f"{tool} answered {resp['status']!r}, not accepted")
        return job

    @staticmethod
    def result(resp: Dict[str, Any]) -> Dict[str, Any]:
        return dict(resp.get("result") or {})

    @staticmethod
    def tool_list(identity: Dict[str, Any]) -> List[Dict[str, Any]]:
        tools = identity.get("capabilities", {}).get("tools", [])
        return [t if isinstance(t, dict) else {"name": t} for t in tools]

    @staticmethod
    def jobs_args(state: Optional[str], limit: Optional[int]) -> Dict[str, Any]:
        args: Dict[str, Any] = {}
        if state is not None:
            args["state"] = state
        if limit is not None:
            args["limit"] = limit
        return args

    @staticmethod
    def poll_args(job: Job, wait_ms: Optional[int], since_version: Optional[int]) -> Dict[str, Any]:
        args: Dict[str, Any] = {"job_id": job.id}
        if wait_ms is not None:
            args["wait_ms"] = wait_ms
        if since_version is not None:
            args["since_version"] = since_version
        return args


class _Attempts:
    """The attempts of one call: each a freshly signed envelope (new nonce
    and timestamp) with the first attempt's ``request_id``, at most
    ``_RETRIES`` retries, and only those that cannot run a tool twice."""

    def __init__(self, core: _Core, tool: str, args: Dict[str, Any], starting: bool) -> None:
        self._core = core
        self._tool = tool
        self._args = args
        self._starting = starting
        self._request_id: Optional[str] = None
        self._retries = 0
        self._delay = 0.1

    def envelope(self) -> Tuple[bytes, Sent]:
        body, sent = self._core.envelope(self._tool, self._args, self._request_id)
        self._request_id = sent.request_id
        return body, sent

    def failed(self, err: TransportError, connected: bool) -> float:
        """After a failed attempt: raises when it may not be retried (an
        :class:`OutcomeUnknownError` when the request may have reached the
        server), else the seconds to wait before the next attempt."""
        retryable = self._core.retryable(self._tool, self._starting, connected)
        if self._retries == _RETRIES or not retryable:
            if connected and not retryable:
                raise OutcomeUnknownError(f"{err}; the request may have reached the server") from err
            raise err
        self._retries += 1
        delay = self._delay
        self._delay = min(delay * 2, 2.0)
        return delay


class _Waiter:
    """The decisions of ``wait``, shared by both clients: long-poll while the
    server can (else poll with a growing pause), report each new progress."""

    def __init__(self, long_poll: bool, on_progress: Optional[Callable[[Progress], None]]) -> None:
        self.long_poll = long_poll
        self.on_progress = on_progress
        self.since: Optional[int] = None
        self.result: Dict[str, Any] = {}
        self._delay = 0.2

    def wait_ms(self) -> Optional[int]:
        return _LONG_POLL_MS if self.long_poll else None

    def refused(self, e: ServerError) -> None:
        """A refused poll: the job's own outcome is raised; anything else
        while long-polling (a server that does not take ``wait_ms``) falls
        back to plain polls."""
        if self.long_poll and e.code not in ("job_failed", "job_cancelled", "unknown_job"):
            self.long_poll = False
            return
        raise e

    def finished(self, view: Union[Progress, Dict[str, Any]]) -> bool:
        if not isinstance(view, Progress):
            self.result = view
            return True
        self.since = view.version
        if self.on_progress is not None:
            self.on_progress(view)
        return False

    def pause(self) -> float:
        """Seconds to sleep before the next poll (none after a long poll)."""
        if self.long_poll:
            return 0.0
        delay = self._delay
        self._delay = min(delay * 1.5, 2.0)
        return delay


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
    elif (secret := _profile_secret(data, "secret", base)) is not None:
        kw["secret"] = secret
    if env.get("LACRE_SERVER_SECRET"):
        kw["server_secret"] = env["LACRE_SERVER_SECRET"].encode()
    elif "server_public_key" in data:
        kw["server_public_key"] = data["server_public_key"]
    elif (server_secret := _profile_secret(data, "server_secret", base)) is not None:
        kw["server_secret"] = server_secret
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
        attempts = _Attempts(self._core, tool, args, starting)
        while True:
            body, sent = attempts.envelope()
            try:
                with self._http.stream(
                    "POST", self._core.url, content=body, headers={"content-type": "application/json"},
                    timeout=self._core.timeout + extra_wait,
                ) as r:
                    content = _read_capped(r, MAX_REPLY_BYTES)
                return self._core.judge(r.status_code, content, sent)
            except (httpx.ConnectError, httpx.ConnectTimeout) as e:
                err, connected = TransportError(f"cannot connect: {e}"), False
            except httpx.HTTPError as e:
                err, connected = TransportError(str(e) or type(e).__name__), True
            except TransportError as e:
                err, connected = e, True
            time.sleep(attempts.failed(err, connected))

    def call(self, tool: str, args: Optional[Dict[str, Any]] = None, *, wait: bool = False,
             on_progress: Optional[Callable[[Progress], None]] = None) -> Union[Dict[str, Any], Job]:
        """Calls a tool: its result, or the :class:`Job` of a long-running tool
        (its result with ``wait=True``)."""
        resp = self._send(tool, args or {})
        job = _Core.accepted_job(resp)
        if job is None:
            return _Core.result(resp)
        return self.wait(job, on_progress=on_progress) if wait else job

    def start(self, tool: str, args: Optional[Dict[str, Any]] = None) -> Job:
        """Starts a long-running tool (a lost reply is retried: the server's
        idempotency returns the job the first attempt created)."""
        return _Core.started_job(tool, self._send(tool, args or {}, starting=True))

    def identity(self) -> Dict[str, Any]:
        return _Core.result(self._send("server_identity", {}))

    def tools(self) -> List[Dict[str, Any]]:
        return _Core.tool_list(self.identity())

    def jobs(self, state: Optional[str] = None, limit: Optional[int] = None) -> List[Dict[str, Any]]:
        args = _Core.jobs_args(state, limit)
        return list(_Core.result(self._send("list_jobs", args)).get("jobs", []))

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
                self._core.learn_long_poll(self.identity())
            except (ServerError, VerificationError):
                self._core.long_poll = False
            except (TransportError, OutcomeUnknownError):
                return None
        return self._core.long_poll

    def wait(self, job: Job, on_progress: Optional[Callable[[Progress], None]] = None) -> Dict[str, Any]:
        """Waits for a job; its result (a failed or cancelled job raises
        :class:`ServerError` with code ``job_failed`` or ``job_cancelled``)."""
        w = _Waiter(self._long_poll() is not False, on_progress)
        while True:
            try:
                view = self.poll(job, w.wait_ms(), w.since)
            except ServerError as e:
                w.refused(e)
                continue
            if w.finished(view):
                return w.result
            time.sleep(w.pause())


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
        attempts = _Attempts(self._core, tool, args, starting)
        while True:
            body, sent = attempts.envelope()
            try:
                status, content = await self._http.request(
                    "POST", self._path, body, self._core.timeout + extra_wait
                )
                return self._core.judge(status, content, sent)
            except ConnectFailed as e:
                err, connected = TransportError(str(e)), False
            except Broken as e:
                err, connected = TransportError(str(e)), True
            except TransportError as e:
                err, connected = e, True
            await asyncio.sleep(attempts.failed(err, connected))

    async def call(self, tool: str, args: Optional[Dict[str, Any]] = None, *, wait: bool = False,
                   on_progress: Optional[Callable[[Progress], None]] = None) -> Union[Dict[str, Any], Job]:
        resp = await self._send(tool, args or {})
        job = _Core.accepted_job(resp)
        if job is None:
            return _Core.result(resp)
        return await self.wait(job, on_progress=on_progress) if wait else job

    async def start(self, tool: str, args: Optional[Dict[str, Any]] = None) -> Job:
        return _Core.started_job(tool, await self._send(tool, args or {}, starting=True))

    async def identity(self) -> Dict[str, Any]:
        return _Core.result(await self._send("server_identity", {}))

    async def tools(self) -> List[Dict[str, Any]]:
        return _Core.tool_list(await self.identity())

    async def jobs(self, state: Optional[str] = None, limit: Optional[int] = None) -> List[Dict[str, Any]]:
        args = _Core.jobs_args(state, limit)
        return list(_Core.result(await self._send("list_jobs", args)).get("jobs", []))

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
                self._core.learn_long_poll(await self.identity())
            except (ServerError, VerificationError):
                self._core.long_poll = False
            except (TransportError, OutcomeUnknownError):
                return None
        return self._core.long_poll

    async def wait(self, job: Job, on_progress: Optional[Callable[[Progress], None]] = None) -> Dict[str, Any]:
        w = _Waiter((await self._long_poll()) is not False, on_progress)
        while True:
            try:
                view = await self.poll(job, w.wait_ms(), w.since)
            except ServerError as e:
                w.refused(e)
                continue
            if w.finished(view):
                return w.result
            await asyncio.sleep(w.pause())
