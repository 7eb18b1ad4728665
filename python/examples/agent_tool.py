"""A lacre tool as a plain, typed Python function that an agent framework
(LangChain, LlamaIndex, PydanticAI, the OpenAI or Anthropic SDKs' tool
helpers...) can register: the framework sees a docstring and typed
parameters; every call underneath is signed and its reply verified."""

from typing import List

import lacre

_client = lacre.Client.from_profile()   # ./lacre-client.toml, or LACRE_* variables


def batch_sum(numbers: List[float]) -> str:
    """Adds a list of numbers. Returns their count and total."""
    try:
        result = _client.call("batch_sum", {"numbers": numbers})
    except lacre.ServerError as e:          # a verified refusal: tell the model why
        return f"error {e.code}: {e.message}"
    assert isinstance(result, dict)
    return f"{result['count']} numbers, total {result['total']}"


if __name__ == "__main__":
    print(batch_sum([10, 20, 30]))
