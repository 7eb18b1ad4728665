"""Against a real `lacre serve` started with no configuration."""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import List

import pytest

import lacre
from conftest import Served


def test_the_quickstart_with_the_generated_profile(served: Served) -> None:
    client = lacre.Client.from_profile(served.profile, url=served.url)
    assert client.call("batch_sum", {"numbers": [10, 20, 30]}) == {"count": 3, "total": 60.0}
    assert "secret" not in repr(client)
    names = [t["name"] for t in client.tools()]
    assert {"batch_sum", "start_long_task", "poll_job"} <= set(names)
    identity = client.identity()
    assert identity["capabilities"]["long_poll"] is True


def test_jobs_progress_cancel_and_list(served: Served) -> None:
    client = lacre.Client.from_profile(served.profile, url=served.url)
    job = client.start("start_long_task", {"seconds": 2, "payload": {"data": "complete"}})
    seen: List[lacre.Progress] = []
    assert client.wait(job, on_progress=seen.append) == {"data": "complete"}
    assert seen and all(p.job_id == job.id for p in seen)
    assert any((p.fraction or 0) > 0 for p in seen)
    # call() on a long-running tool returns the job, or waits.
    assert isinstance(client.call("start_long_task", {"seconds": 1}), lacre.Job)
    assert client.call("start_long_task", {"seconds": 1, "payload": {"w": 1}}, wait=True) == {"w": 1}
    long = client.start("start_long_task", {"seconds": 20})
    assert client.cancel(long) == "cancelled"
    with pytest.raises(lacre.ServerError) as e:
        client.wait(long)
    assert e.value.code == "job_cancelled"
    states = {j["job_id"]: j["state"] for j in client.jobs()}
    assert states[long.id] == "cancelled" and states[job.id] == "done"


def test_since_version_returns_an_unseen_change_at_once(served: Served) -> None:
    client = lacre.Client.from_profile(served.profile, url=served.url)
    job = client.start("start_long_task", {"seconds": 4})
    first = client.poll(job)
    assert isinstance(first, lacre.Progress) and first.version is not None
    # Progress moves once a second: wait (without a long poll) until it has.
    deadline = time.monotonic() + 5
    while True:
        now = client.poll(job)
        assert isinstance(now, lacre.Progress)
        if now.version != first.version:
            break
        assert time.monotonic() < deadline, "the job never reported progress"
        time.sleep(0.05)
    # The change was just seen (polls 50 ms apart), so the next one is
    # most of a second away: a long poll waiting for it would take that
    # long. Naming the version seen first, it is answered at once.
    started = time.monotonic()
    view = client.poll(job, wait_ms=20_000, since_version=first.version)
    assert time.monotonic() - started < 0.5
    assert isinstance(view, lacre.Progress) and view.version is not None
    assert view.version >= now.version
    client.cancel(job)


def test_errors_are_typed(served: Served) -> None:
    client = lacre.Client.from_profile(served.profile, url=served.url)
    with pytest.raises(lacre.ServerError) as e:
        client.call("batch_sum", {"numbers": "ten"})
    assert e.value.code == "invalid_args"
    with pytest.raises(lacre.ServerError) as e:
        client.call("no_such_tool", {})
    assert e.value.code == "unknown_tool"
    with pytest.raises(lacre.ServerError) as e:
        client.poll(lacre.Job("00000000-0000-4000-8000-000000000000"))
    assert e.value.code == "unknown_job"


def test_a_wrong_server_key_is_a_verification_error(served: Served) -> None:
    good = lacre.Client.from_profile(served.profile, url=served.url)
    core = good._core
    wrong = lacre.Client(
        core.url, client_id=core.client_id, server_id=core.server_id,
        key=core.key, server_secret=b"not the server's key",
    )
    with pytest.raises(lacre.VerificationError):
        wrong.call("batch_sum", {"numbers": [1]})


def test_a_reply_to_other_bytes_is_refused() -> None:
    # A bound error for a different request body: never used as data.
    server = lacre.Key.hmac("s")
    sent = lacre.Sent(body=b'{"the":"bytes sent"}', request_id="r1", server_id="srv")
    other = hashlib.sha256(b"other bytes").hexdigest()
    import time as _t

    resp = {
        "v": "mcp/0.1", "request_id": "r1", "ts_ms": int(_t.time() * 1000), "ok": False,
        "server_id": "srv", "status": "error", "result": {"request_sha256": other},
        "error": "bad_signature: signature does not match",
    }
    from lacre.wire import response_fields

    resp["signature"] = server.sign(lacre.canonical(response_fields(resp)))
    with pytest.raises(lacre.VerificationError):
        lacre.verify_reply(lacre.canonical(resp), server.verifier(), sent)
    # Bound to these bytes: the outcome.
    resp["result"] = {"request_sha256": hashlib.sha256(sent.body).hexdigest()}
    resp["signature"] = server.sign(lacre.canonical(response_fields(resp)))
    with pytest.raises(lacre.ServerError):
        lacre.verify_reply(lacre.canonical(resp), server.verifier(), sent)
    # Unbound (as the seed's server answers): outcome unknown.
    resp["result"] = None
    resp["signature"] = server.sign(lacre.canonical(response_fields(resp)))
    with pytest.raises(lacre.OutcomeUnknownError):
        lacre.verify_reply(lacre.canonical(resp), server.verifier(), sent)


def test_async_client_with_concurrent_calls(served: Served) -> None:
    async def main() -> None:
        async with lacre.AsyncClient.from_profile(served.profile, url=served.url) as c:
            results = await asyncio.gather(
                *(c.call("batch_sum", {"numbers": [i, 1]}) for i in range(32))
            )
            assert [r["total"] for r in results] == [float(i + 1) for i in range(32)]
            job = await c.start("start_long_task", {"seconds": 1, "payload": {"a": 1}})
            assert await c.wait(job) == {"a": 1}

    asyncio.run(main())


def test_fingerprint_trust(served: Served) -> None:
    # The generated server key is Ed25519: pin it by fingerprint.
    import re

    toml = (served.dir / "lacre.toml").read_text()
    assert 'alg = "ed25519"' in toml
    plain = lacre.Client.from_profile(served.profile, url=served.url)
    well_known = plain._http.get(plain._core.well_known_url()).json()
    pk = well_known["public_key_hex"]
    fp = hashlib.sha256(bytes.fromhex(pk)).hexdigest()
    core = plain._core
    pinned = lacre.Client(
        core.url, client_id=core.client_id, server_id=core.server_id, key=core.key,
        server_fingerprint=fp[:32],
    )
    assert pinned.call("batch_sum", {"numbers": [2]}) == {"count": 1, "total": 2.0}
    bad = lacre.Client(
        core.url, client_id=core.client_id, server_id=core.server_id, key=core.key,
        server_fingerprint=("0" if fp[0] != "0" else "1") + fp[1:32],
    )
    with pytest.raises(lacre.VerificationError):
        bad.call("batch_sum", {"numbers": [2]})
    with pytest.raises(lacre.UsageError):
        lacre.Client(core.url, client_id="c", server_id="s", key=core.key, server_fingerprint=fp[:16])
    assert re.fullmatch(r"[0-9a-f]{64}", fp)
