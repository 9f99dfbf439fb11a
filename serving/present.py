"""Moved to `features.model.present`, beside the typed answers it presents. Kept only while serving/predict.py,
which another part of issue 24 is changing, still imports it from here: remove once that import is
`features.model.present`."""

from features.model.present import present

__all__ = ["present"]
