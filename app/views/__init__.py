"""Widgets that show volumes (pyvistaqt panes) and the hierarchy view built from them."""
