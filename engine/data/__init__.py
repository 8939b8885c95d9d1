"""Datasets, preprocessing and built-in phantoms."""
