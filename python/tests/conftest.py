"""Shared fixtures: the repository's vectors, and a real `lacre serve`.

The server is the `lacre` binary named by LACRE_BIN (`.ci/run` builds it);
without it the live tests are skipped with their reason, unless
LACRE_REQUIRE_ALL or CI is set, where that is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator, Optional

import pytest

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "testdata" / "vectors"


def _binary() -> Optional[str]:
    found = os.environ.get("LACRE_BIN") or shutil.which("lacre")
    return found if found and Path(found).exists() else None


def require_binary() -> str:
    b = _binary()
    if b is None:
        why = "no lacre binary: set LACRE_BIN (cargo build --release -p lacre-cli)"
        if os.environ.get("LACRE_REQUIRE_ALL") or os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    return b


class Served:
    """A `lacre serve` child with no configuration: it writes lacre.toml and
    the client's profile lacre-client.toml in its directory."""

    def __init__(self, binary: str, extra_config: str = "") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="lacre-py-"))
        self.binary = binary
        args = [binary, "serve", "--listen", "127.0.0.1:0"]
        if extra_config:
            (self.dir / "lacre.toml").write_text(extra_config)
            args += ["--config", str(self.dir / "lacre.toml")]
        self.proc = subprocess.Popen(
            args, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True,
        )
        self.url = ""
        deadline = time.monotonic() + 30
        assert self.proc.stderr is not None
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            m = re.search(r"listening on (http://\S+/mcp)", line)
            if m:
                self.url = m.group(1)
                break
        if not self.url:
            self.stop()
            raise RuntimeError("lacre serve did not start")

    @property
    def profile(self) -> Path:
        return self.dir / "lacre-client.toml"

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def served() -> Iterator[Served]:
    s = Served(require_binary())
    yield s
    s.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
