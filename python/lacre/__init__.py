"""lacre: signed, stateless, asynchronous tool calls.

    import lacre
    client = lacre.Client.from_profile()          # ./lacre-client.toml, as `lacre serve` writes it
    client.call("batch_sum", {"numbers": [10, 20, 30]})   # {'count': 3, 'total': 60.0}

Every reply is verified (signature, timestamp, and that it answers this
request: SPEC §6.3–§6.5) before anything of it is returned.
"""

from .client import AsyncClient, Client, Job, Progress
from .errors import (
    LacreError,
    OutcomeUnknownError,
    ServerError,
    TransportError,
    UsageError,
    VerificationError,
)
from .webhooks import sign_webhook, verify_webhook
from .wire import Key, Sent, Verifier, canonical, parse_strict, sign_envelope, verify_reply

__all__ = [
    "AsyncClient", "Client", "Job", "Progress",
    "LacreError", "OutcomeUnknownError", "ServerError", "TransportError", "UsageError",
    "VerificationError",
    "Key", "Sent", "Verifier", "canonical", "parse_strict", "sign_envelope", "verify_reply",
    "sign_webhook", "verify_webhook",
]
__version__ = "0.1.0"
