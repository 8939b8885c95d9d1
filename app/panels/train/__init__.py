"""The Train dialog: a settings form (form.py), loss curves and previews (results.py), and the dialog
that runs ``python -m engine train`` as a child process (dialog.py)."""

from .dialog import TrainDialog, open_train_dialog

__all__ = ["TrainDialog", "open_train_dialog"]
