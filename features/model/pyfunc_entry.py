"""MLflow models-from-code entry point: logged with the model, it names the pyfunc class to load."""

import mlflow.models

from features.model.pyfunc import RouterModel

mlflow.models.set_model(RouterModel())
