"""Errors the engine reports to users: one line naming the cause, never a traceback."""


class EngineError(Exception):
    """Base class: the CLI prints str(error) on one line and exits non-zero; the app shows a dialog."""


class CheckpointError(EngineError):
    """A model file that cannot be read or does not fit the expected network."""


class VolumeError(EngineError):
    """A volume file that cannot be read, or holds data we cannot use (NaN, 4-D, ...)."""


class ConfigError(EngineError):
    """An impossible setting (resolution, slab start, device, ...)."""


def first_line(error: BaseException, limit: int | None = None) -> str:
    """An exception's first line (its type when it has no text), for one-line error messages."""
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:limit]


def user_message(error: BaseException) -> str:
    """What a user sees for any error: the engine's own line, or the exception's type and first line
    (an unexpected error is named by its type, so it is not mistaken for an explained one)."""
    if isinstance(error, EngineError) or not str(error).strip():
        return first_line(error)
    return f"{type(error).__name__}: {first_line(error)}"
