"""The engine: HA-GAN and Split&Shuffle-GAN models, generation, volumes, training, metrics, CLI.

Never imports Qt, VTK or pyvista; the app and scripts use the same public API.
"""

__version__ = "0.1.0"
