"""The engine is usable without any GUI stack: importing it never pulls in Qt, VTK or pyvista."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in {'PySide6', 'vtk', 'vtkmodules', 'pyvista', 'pyvistaqt', 'qtpy', 'pyqtgraph', 'app'}:
            raise ImportError('engine imported GUI module ' + name)
sys.meta_path.insert(0, Block())
import pkgutil, importlib, engine
for info in pkgutil.walk_packages(engine.__path__, 'engine.'):
    if info.name != 'engine.__main__':
        importlib.import_module(info.name)
print('ok', len(sys.modules))
"""


def test_every_engine_module_imports_with_gui_packages_blocked():
    result = subprocess.run([sys.executable, "-c", BLOCKER], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")


def test_engine_cli_help_runs_without_a_display():
    result = subprocess.run(
        [sys.executable, "-m", "engine", "--help"], cwd=ROOT, capture_output=True, text=True, env={"PATH": ""}
    )
    assert result.returncode == 0 and "sample" in result.stdout and "convert" in result.stdout
