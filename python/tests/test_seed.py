"""Against the seed article's own server (interop/seed_server.py, run by the
system's python3, which has the seed's pydantic and aiohttp): no long poll
advertised, so jobs are polled with backoff; its errors bind nothing, so
they are "outcome unknown", never "refused"."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

import lacre
from conftest import ROOT


@pytest.fixture
def seed_url():  # type: ignore[no-untyped-def]
    python = shutil.which("python3")
    probe = subprocess.run(
        [python or "python3", "-c", "import pydantic, aiohttp"], capture_output=True
    ) if python else None
    if probe is None or probe.returncode != 0:
        why = "the system python3 cannot import pydantic and aiohttp (pip install -r testdata/requirements.txt)"
        if os.environ.get("LACRE_REQUIRE_ALL") or os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    proc = subprocess.Popen(
        [python or "python3", str(ROOT / "interop" / "seed_server.py"), "--port", "0",
         "--server-id", "mcp-server-001", "--server-secret", "server_secret_key_123",
         "--client", "client-001=client_secret_key_456"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line.startswith("LISTENING "), line
    yield line.split(" ", 1)[1]
    proc.terminate()
    proc.wait()


def test_the_seed_server(seed_url: str) -> None:
    client = lacre.Client(
        seed_url, client_id="client-001", secret=b"client_secret_key_456",
        server_id="mcp-server-001", server_secret=b"server_secret_key_123",
    )
    assert client.call("batch_sum", {"numbers": [10, 20, 30]}) == {"count": 3, "total": 60.0}
    job = client.start("start_long_task", {"seconds": 2, "payload": {"data": "complete"}})
    seen = []
    assert client.wait(job, on_progress=seen.append) == {"data": "complete"}
    assert client._core.long_poll is False, "the seed advertises no long poll"
    assert seen, "polled while running"
    with pytest.raises(lacre.OutcomeUnknownError):
        client.call("batch_sum", {"numbers": "ten"})
