"""MLflow models-from-code entry point: logged with the model, it names the pyfunc class to load."""

import mlflow.models

from features.mlflow_model import RouterModel

mlflow.models.set_model(RouterModel())
