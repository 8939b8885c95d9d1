"""Start the desktop app: python main.py [--model FILE] [--resolution S] [--seed N] [--screenshot FILE]."""

from __future__ import annotations

import os

os.environ["QT_API"] = "pyside6"  # before anything imports Qt: qtpy (inside pyvistaqt) must pick PySide6

import argparse  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Explore volumes made by 3D medical GANs (synthetic data only).")
    parser.add_argument(
        "--model",
        metavar="FILE",
        help="our .safetensors model or an official HA-GAN G_iterN.pth (default: the bundled chest CT demo model)",
    )
    parser.add_argument("--resolution", type=int, metavar="S", help="resolution of official HA-GAN files (128 or 256)")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the first volume (default 0)")
    parser.add_argument("--screenshot", metavar="FILE", help="save the default view as PNG and exit")
    args = parser.parse_args(argv)
    if not 0 <= args.seed <= 2**31 - 1:
        parser.error(f"--seed must be between 0 and {2**31 - 1}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    from app.main_window import MainWindow
    from engine.api import user_message
    from engine.demo import demo_models

    # no model named: the bundled chest CT demo (when the checkout has it)
    model = args.model or next(iter(demo_models()), None)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("GAN Volume Explorer")
    window = MainWindow(interactive=args.screenshot is None)
    window.panels["latent"].seed_box.setValue(args.seed)
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl+C ends the app even while Qt's loop runs

    def fail(message: str) -> None:
        print(f"error: {message}", file=sys.stderr)
        app.exit(1)

    def unexpected(kind: type[BaseException], error: BaseException, trace) -> None:
        """Last resort for an exception escaping a Qt slot: report it, never crash."""
        traceback.print_exception(kind, error, trace, file=sys.stderr)
        if window.interactive:
            QMessageBox.critical(window, "Unexpected error", user_message(error))
        else:
            fail(user_message(error))

    sys.excepthook = unexpected
    if args.screenshot:
        path = args.screenshot

        def save() -> None:
            if window.grab().save(path, "PNG"):
                app.exit(0)
            else:
                fail(f"{path}: cannot write the screenshot")

        window.error_reported.connect(fail)
        if model:

            def shown(parts) -> None:
                if "full" in parts:  # the full volume comes last: every pane is drawn
                    QTimer.singleShot(0, save)

            window.hierarchy.rendered.connect(shown)
        else:
            QTimer.singleShot(0, save)
    window.show()
    if model:
        window.open_model(model, args.resolution)
    code = app.exec()
    if window.jobs.abandoned:
        # a job still inside a long step after Cancel would hold the exit (Qt waits for its thread):
        # settings and the workspace are saved, and its file writes are atomic (no torn file)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
