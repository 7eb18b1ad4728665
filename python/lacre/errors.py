"""The errors a lacre call can end with."""

from __future__ import annotations

from typing import Any, Dict, Optional


class LacreError(Exception):
    """Base class of every lacre error."""


class UsageError(LacreError):
    """The client was given something it cannot use (a bad key, URL, pin)."""


class TransportError(LacreError):
    """The server could not be reached, or the connection failed."""


class VerificationError(LacreError):
    """A reply that does not verify: never returned as data."""


class OutcomeUnknownError(LacreError):
    """The request may have reached the server and run; whether it did is
    unknown (a lost reply, or a refusal that does not prove it did not,
    SPEC §6.5)."""

    def __init__(self, message: str, code: Optional[str] = None) -> None:
        super().__init__(message)
        self.code = code


class ServerError(LacreError):
    """A verified error reply that tells the request's outcome."""

    def __init__(self, code: str, message: str, response: Dict[str, Any]) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.response = response
