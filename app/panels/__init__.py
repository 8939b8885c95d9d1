"""Dock panels, one file each; every panel takes an AppContext."""
