"""What every panel gets: the state, the job runner, the generation controller and a way to report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtWidgets import QWidget

from .generation import GenerationController
from .state import AppState
from .workers import JobRunner


@dataclass
class AppContext:
    """Panels edit ``state`` and submit work to ``jobs``; they never reach into other panels or views."""

    state: AppState
    jobs: JobRunner
    generation: GenerationController
    window: QWidget  # parent for dialogs
    report_error: Callable[[str], None]  # a one-line cause: status bar + dialog
    show_message: Callable[[str], None]  # a transient status-bar message
