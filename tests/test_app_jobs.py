"""Jobs in the status bar: a long job stays shown (and cancellable) while short ones come and go in the
other pool; a cancel names the job; closing the window does not wait for a job that ignores Cancel."""

from __future__ import annotations

import threading

from app_support import WAIT_MS, open_and_wait, wait_for_parts
from PySide6.QtCore import Qt

from app.workers import BACKGROUND, Cancelled


def slow_reading(release: threading.Event, stopped: threading.Event):
    """A job that reports progress once, then waits (like one image of a long series) until released or cancelled."""

    def work(progress):
        progress(3, 10, "reading image 4/10")
        while not release.wait(0.02):
            if progress.cancelled:
                stopped.set()
                raise Cancelled
        return "read"

    return work


def test_a_long_job_stays_shown_and_cancellable_after_a_generation_ends(main_window, qtbot, tiny_model_file):
    open_and_wait(main_window, qtbot, tiny_model_file)
    qtbot.waitUntil(lambda: not main_window.jobs.busy(), timeout=WAIT_MS)
    release, stopped, results, ended = threading.Event(), threading.Event(), [], {}
    started: list[str] = []
    main_window.jobs.job_started.connect(lambda _ticket, label: started.append(label))
    main_window.jobs.job_finished.connect(lambda ticket, outcome: ended.__setitem__(ticket, outcome))
    try:
        slow = main_window.jobs.submit(
            "open volume", "Opening series", slow_reading(release, stopped), results.append, pool=BACKGROUND
        )
        qtbot.waitUntil(lambda: main_window.job_label.text() == "reading image 4/10", timeout=WAIT_MS)

        next_seed = main_window.panels["latent"].next_button  # a generation on the inference thread
        wait_for_parts(main_window, qtbot, lambda: qtbot.mouseClick(next_seed, Qt.MouseButton.LeftButton))
        qtbot.waitUntil(lambda: not main_window.jobs.busy("generate"), timeout=WAIT_MS)
        assert len(started) >= 2 and slow not in ended  # the generation took the bar over, and ended

        assert main_window.job_label.isVisible() and main_window.job_label.text() == "reading image 4/10"
        assert main_window.progress.isVisible()
        assert (main_window.progress.value(), main_window.progress.maximum()) == (3, 10)
        assert main_window.cancel_button.isVisible()

        qtbot.mouseClick(main_window.cancel_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: slow in ended, timeout=WAIT_MS)
    finally:
        release.set()
    assert ended[slow] == "cancelled" and stopped.is_set() and results == []
    assert not main_window.job_label.isVisible() and not main_window.progress.isVisible()
    assert not main_window.cancel_button.isVisible()


def test_a_cancelled_job_is_named_in_the_message(main_window, qtbot):
    release, stopped, ended = threading.Event(), threading.Event(), []
    main_window.jobs.job_finished.connect(lambda _ticket, outcome: ended.append(outcome))
    try:
        main_window.jobs.submit("test", "Exporting scan.nii.gz", slow_reading(release, stopped), pool=BACKGROUND)
        qtbot.waitUntil(main_window.cancel_button.isVisible, timeout=WAIT_MS)
        qtbot.mouseClick(main_window.cancel_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: bool(ended), timeout=WAIT_MS)
    finally:
        release.set()
    assert ended == ["cancelled"] and stopped.is_set()
    assert main_window.statusBar().currentMessage() == "Exporting scan.nii.gz cancelled"


def test_closing_hides_the_window_and_does_not_wait_for_a_job_that_ignores_cancel(main_window, qtbot):
    release, returned = threading.Event(), threading.Event()

    def stubborn(progress):
        progress(0, 0, "one long step")
        release.wait(10)  # never asks whether it was cancelled (a long step between reports)
        returned.set()

    main_window.jobs.shutdown_wait_s = 0.3
    visible_while_waiting: list[bool] = []
    shutdown = main_window.jobs.shutdown

    def watched_shutdown(*args, **kwargs):
        visible_while_waiting.append(main_window.isVisible())
        return shutdown(*args, **kwargs)

    main_window.jobs.shutdown = watched_shutdown
    try:
        main_window.jobs.submit("test", "Stubborn", stubborn, pool=BACKGROUND)
        qtbot.waitUntil(main_window.cancel_button.isVisible, timeout=WAIT_MS)
        main_window.close()
        still_blocked = not returned.is_set()  # close came back while the job was still inside its step
    finally:
        release.set()
    assert still_blocked and main_window.jobs.abandoned
    assert visible_while_waiting == [False]  # the window went first, then the wait
    qtbot.waitUntil(returned.is_set, timeout=WAIT_MS)  # (the fixture's teardown destroys the pools after this)
