"""Kept for models registered before `features/` was regrouped: the models-from-code entry file they carry imports
`RouterModel` from here. New models name `features.model.pyfunc`."""

from features.model.pyfunc import RouterModel

__all__ = ["RouterModel"]
