"""pyvista scene builders for the app's views; no widgets here."""
