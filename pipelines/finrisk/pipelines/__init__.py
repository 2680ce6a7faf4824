"""The retraining pipeline: the DAG (retraining), compilation (compile), local runs (local)
and cluster operations through kfp.Client (cluster)."""
