"""Datasets: the embedded defaults, image folders, text corpora and DVC versioning."""
