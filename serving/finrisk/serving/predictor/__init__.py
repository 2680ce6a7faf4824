"""finrisk's KServe predictor: champion models from the MLflow registry over V1 and V2 (OIP).

`finrisk serve` starts it (server.serve); see app.py for the routes, model.py for the
kserve.Model subclasses, inputs.py for the request rules and scoring.py for the outputs.
"""
