"""The article's reference code ("Building Scalable AI Agents: A Guide to
Stateless, Secure Protocols"), kept as close to its text as possible.

Everything below is copied from the article except the lines marked
``# added: ...``, which fill in what the article elides
("# ... (implementation for server_identity)" and the like) in the obvious
way.  lacre's Rust integration tests use this module (through
seed_server.py and seed_client.py) as the reference implementation of the
wire format: do not "fix" the seed here, fix lacre instead.

Run it directly for the article's in-process demo:  python3 interop/seed.py
"""

import asyncio, time, json, uuid, hmac, hashlib
from dataclasses import dataclass
from typing import Any, Dict, Optional, Literal, List
from pydantic import BaseModel, Field, ValidationError, ConfigDict

def _now_ms():
    return int(time.time() * 1000)

def _uuid():
    return str(uuid.uuid4())

def _canonical_json(obj):
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()

def _hmac_hex(secret, payload):
    return hmac.new(secret, _canonical_json(payload), hashlib.sha256).hexdigest()


class MCPEnvelope(BaseModel):
    model_config = ConfigDict(extra="forbid")
    v: Literal["mcp/0.1"] = "mcp/0.1"
    request_id: str = Field(default_factory=_uuid)
    ts_ms: int = Field(default_factory=_now_ms)
    client_id: str
    server_id: str
    tool: str
    args: Dict[str, Any] = Field(default_factory=dict)
    nonce: str = Field(default_factory=_uuid)
    signature: str


class MCPResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")
    v: Literal["mcp/0.1"] = "mcp/0.1"
    request_id: str
    ts_ms: int = Field(default_factory=_now_ms)
    ok: bool
    server_id: str
    status: Literal["ok", "accepted", "running", "done", "error"]
    result: Optional[Dict[str, Any]] = None
    error: Optional[str] = None
    signature: str


class ServerIdentityOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    server_id: str
    fingerprint: str
    capabilities: Dict[str, Any]

class BatchSumIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    numbers: List[float] = Field(min_length=1)

class BatchSumOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: int
    total: float

class StartLongTaskIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: int = Field(ge=1, le=20)
    payload: Dict[str, Any] = Field(default_factory=dict)

class PollJobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    job_id: str


@dataclass
class JobState:
    job_id: str
    status: str
    result: Optional[Dict[str, Any]] = None
    error: Optional[str] = None

# added: the tool names server_identity reports as its capabilities
TOOLS = ["server_identity", "batch_sum", "start_long_task", "poll_job"]

class MCPServer:
    def __init__(self, server_id, secret):
        self.server_id = server_id
        self.secret = secret
        self.jobs = {} # Stores the state of long-running jobs
        self.tasks = {} # Stores the running asyncio tasks

    def _fingerprint(self):
        return hashlib.sha256(self.secret).hexdigest()[:16]

    # added: a reply in the article's MCPResponse shape (signed below like
    # every other reply): the "ok" of an immediate tool, and an error reply,
    # which the article never shows
    def _reply(self, env, ok, status, **fields):
        return MCPResponse(
            request_id=env.request_id,
            ok=ok,
            server_id=self.server_id,
            status=status,
            signature="",
            **fields,
        )

    def _ok(self, env, out):
        return self._reply(env, True, "ok", result=out.model_dump())

    def _error(self, env, message):
        return self._reply(env, False, "error", error=message)

    async def handle(self, env_dict, client_secret):
        # 1. Validate the envelope shape
        try:
            env = MCPEnvelope(**env_dict)
        except ValidationError as e:
            return {"error": "bad envelope", "details": str(e)}

        # 2. Verify the signature
        payload = env.model_dump()
        sig = payload.pop("signature")
        if _hmac_hex(client_secret, payload) != sig:
            return {"error": "bad signature"}

        # 3. Dispatch to the correct tool
        try:  # added: invalid tool args become an "invalid_args" error reply instead of an exception
            if env.tool == "server_identity":
                # added: implementation for server_identity
                out = ServerIdentityOut(
                    server_id=self.server_id,
                    fingerprint=self._fingerprint(),
                    capabilities={"tools": list(TOOLS)},
                )
                resp = self._ok(env, out)
            elif env.tool == "batch_sum":
                # added: implementation for batch_sum
                args = BatchSumIn(**env.args)
                out = BatchSumOut(count=len(args.numbers), total=sum(args.numbers))
                resp = self._ok(env, out)
            elif env.tool == "start_long_task":
                args = StartLongTaskIn(**env.args)
                jid = _uuid()
                self.jobs[jid] = JobState(jid, "running")

                async def run():
                    await asyncio.sleep(args.seconds)
                    self.jobs[jid].status = "done"
                    self.jobs[jid].result = args.payload

                self.tasks[jid] = asyncio.create_task(run())

                resp = MCPResponse(
                    request_id=env.request_id,
                    ok=True,
                    server_id=self.server_id,
                    status="accepted",
                    result={"job_id": jid},
                    signature="",
                )
            elif env.tool == "poll_job":
                # added: implementation for poll_job
                args = PollJobIn(**env.args)
                job = self.jobs.get(args.job_id)
                if job is None:
                    resp = self._error(env, f"unknown_job: {args.job_id}")
                elif job.status == "done":
                    resp = self._reply(env, True, "done", result=job.result)
                elif job.status == "running":
                    running = {"job_id": job.job_id, "state": "running"}
                    resp = self._reply(env, True, "running", result=running)
                else:
                    # added: JobState has an error field; the article's jobs never fail
                    resp = self._error(env, f"job_failed: {job.error}")
            else:
                # added: the article has no branch for an unknown tool (resp would be unbound)
                resp = self._error(env, f"unknown_tool: {env.tool}")
        except ValidationError as e:  # added: see the try above
            resp = self._error(env, f"invalid_args: {e}")

        # 4. Sign and return the response
        payload = resp.model_dump()
        # We need to remove the signature field before signing
        payload.pop("signature", None)
        resp.signature = _hmac_hex(self.secret, payload)
        return resp.model_dump()


class MCPClient:
    def __init__(self, client_id, secret, server):
        self.client_id = client_id
        self.secret = secret
        self.server = server

    async def call(self, tool, args=None):
        env_data = {
            "client_id": self.client_id,
            "server_id": self.server.server_id,
            "tool": tool,
            "args": args or {},
        }

        # We create a temporary envelope to get defaults, then sign it
        temp_env = MCPEnvelope(**env_data, signature="")
        payload = temp_env.model_dump()
        payload.pop("signature")
        # added: keep temp_env's defaults (request_id, ts_ms, nonce). The article's text
        # omits this line, so its final_env gets fresh defaults, the signature no longer
        # matches, and its own server answers {"error": "bad signature"} to every call.
        env_data = dict(payload)

        env_data["signature"] = _hmac_hex(self.secret, payload)

        # Re-create the full envelope with the signature
        final_env = MCPEnvelope(**env_data)

        return await self.server.handle(final_env.model_dump(), self.secret)


async def demo():
    server_secret = b"server_secret_key_123"
    client_secret = b"client_secret_key_456"

    server = MCPServer("mcp-server-001", server_secret)
    client = MCPClient("client-001", client_secret, server)

    # 1. Simple synchronous call
    print("Checking server identity...")
    identity = await client.call("server_identity")
    print(identity)

    # 2. Another synchronous call with args
    print("\nCalculating a sum...")
    sum_result = await client.call("batch_sum", {"numbers": [10, 20, 30]})
    print(sum_result)

    # 3. Start a long-running task
    print("\nStarting a 2-second task...")
    start_resp = await client.call("start_long_task", {"seconds": 2, "payload": {"data": "complete"}})
    job_id = start_resp["result"]["job_id"]
    print(f"Task started with job_id: {job_id}")

    # 4. Poll for the result
    while True:
        print("Polling job status...")
        poll_resp = await client.call("poll_job", {"job_id": job_id})
        if poll_resp["status"] == "done":
            print("\nTask is done!")
            print(poll_resp)
            break
        await asyncio.sleep(0.5)

# To run this in a Python file:
# asyncio.run(demo())

if __name__ == "__main__":  # added: run the demo when executed as a script
    asyncio.run(demo())
