"""MLflow "model from code" entry point: MLflow runs this file to build the pyfunc at load time,
so no pickled Python object is stored with the model."""

import mlflow.models

from finrisk.registry.pyfunc import FinriskPyfunc

mlflow.models.set_model(FinriskPyfunc())
