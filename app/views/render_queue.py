"""One redraw per change, one pane per turn of the event loop.

A change seen by several panes (window, crosshair, 3D mode) would otherwise repaint them all in the
same turn, and the UI thread would wait for the sum of their renders (a software renderer takes
~100 ms per pane). Panes ask here instead; each asking pane is painted once, FRAME_MS after the
previous one, so timers and input get a turn in between. Asking again before the paint is free.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import QObject, QTimer

FRAME_MS = 16
# work that takes turns with the panes (the next pane's scene) waits for the previous pane's paint,
# at most this many FRAME_MS turns (a window that is not exposed never paints)
PAINT_WAIT_TURNS = 60


class RenderQueue(QObject):
    def __init__(self):
        super().__init__()
        self._waiting: list = []
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._paint_next)

    def request(self, pane) -> None:
        if pane not in self._waiting:
            self._waiting.append(pane)
        if not self._timer.isActive():
            self._timer.start(0)

    def forget(self, pane) -> None:
        if pane in self._waiting:
            self._waiting.remove(pane)

    def pending(self, pane) -> bool:
        return pane in self._waiting

    def _paint_next(self) -> None:
        while self._waiting:
            pane = self._waiting.pop(0)
            if pane.paint_now():
                break
        if self._waiting:
            self._timer.start(FRAME_MS)  # after this pane's paint


_queue: RenderQueue | None = None


def render_queue() -> RenderQueue:
    global _queue
    if _queue is None:
        _queue = RenderQueue()
    return _queue


def take_turns(
    owner: QObject,
    panes: Sequence,
    steps: list[tuple[object | None, Callable[[], None]]],
    wanted: Callable[[], bool],
    finished: Callable[[], None] | None = None,
) -> None:
    """Run ``steps`` (the pane a step draws or None, the step) one per turn of the event loop, each
    after the other ``panes`` have painted (at most PAINT_WAIT_TURNS turns): several panes' scenes in
    one go would block the UI thread for the sum of their renders. ``wanted`` false drops the rest
    (superseded); ``finished`` follows the last step."""
    steps, waited = list(steps), [0]

    def next_step() -> None:
        if not wanted():
            return
        pane, step = steps[0]
        # another pane's paint comes first (this pane's own waiting paint shows the new scene too)
        painting = any(other.paint_pending for other in panes if other is not pane)
        if not painting or waited[0] >= PAINT_WAIT_TURNS:
            waited[0] = 0
            steps.pop(0)
            step()
        else:
            waited[0] += 1
        if steps:
            QTimer.singleShot(FRAME_MS, owner, next_step)  # (again, if a pane has not painted yet)
        elif finished is not None:
            finished()

    if steps:
        next_step()
    elif finished is not None:
        finished()
