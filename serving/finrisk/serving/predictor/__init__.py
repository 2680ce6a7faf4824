"""finrisk's KServe predictor: champion models from the MLflow registry over V1 and V2 (OIP),
REST and gRPC.

`finrisk serve` starts it (server.serve); see app.py for the REST routes, grpc_service.py for
the gRPC service, served.py for what both look up, model.py for the kserve.Model subclasses,
inputs.py for the request rules and scoring.py for the outputs.
"""
