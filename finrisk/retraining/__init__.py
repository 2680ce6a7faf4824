"""The retraining stages as plain functions over files: what each pipeline component calls.

Each stage reads its inputs from paths and writes its outputs to paths, so that the Kubeflow
components (finrisk.components) stay thin wrappers and every stage is testable without KFP.
"""
