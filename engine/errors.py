"""Errors the engine reports to users: one line naming the cause, never a traceback."""

import re

# ANSI escape sequences (CSI, OSC, and two-character escapes), then any remaining control character
_ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def clean_text(text: object, limit: int | None = None) -> str:
    """Text from a file or a library, safe for a terminal or a dialog: one line, no escape sequences.

    Newlines and tabs become spaces; every other control character (ESC, BEL, C1 codes) is dropped.
    """
    text = _ANSI.sub("", str(text))
    text = re.sub(r"[\r\n\t]+", " ", text)
    return _CONTROL.sub("", text)[:limit]


class EngineError(Exception):
    """Base class: the CLI prints str(error) on one line and exits non-zero; the app shows a dialog.

    The message is cleaned on creation (``clean_text``), so text quoted from a file can neither
    split it into several lines nor reach a terminal as escape codes.
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*(clean_text(a) if isinstance(a, str) else a for a in args))


class CheckpointError(EngineError):
    """A model file that cannot be read or does not fit the expected network."""


class VolumeError(EngineError):
    """A volume file that cannot be read, or holds data we cannot use (NaN, 4-D, ...)."""


class ConfigError(EngineError):
    """An impossible setting (resolution, slab start, device, ...)."""


class TrainingError(EngineError):
    """A run that had to stop (diverged, disk full); its last complete checkpoint is kept."""


def first_line(error: BaseException, limit: int | None = None) -> str:
    """An exception's first line (its type when it has no text), cleaned, for one-line error messages.

    torch's advice about ``weights_only=False`` is dropped: loading arbitrary pickles is never the fix.
    """
    lines = [line for line in (_ANSI.sub("", raw).strip() for raw in str(error).splitlines()) if line]
    lines = [line for line in lines if "weights_only" not in line or "failed" in line.lower()]
    return clean_text(lines[0] if lines else type(error).__name__, limit)


def user_message(error: BaseException) -> str:
    """What a user sees for any error: the engine's own line, or the exception's type and first line
    (an unexpected error is named by its type, so it is not mistaken for an explained one)."""
    if isinstance(error, EngineError) or not str(error).strip():
        return first_line(error)
    return f"{type(error).__name__}: {first_line(error)}"
