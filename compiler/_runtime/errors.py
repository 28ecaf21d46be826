"""The one error type of the runtime layer."""


class RuntimeCheckError(ValueError):
    """A runtime call that upstream VTA rejects with a fatal ``CHECK`` (names the rule and numbers)."""
