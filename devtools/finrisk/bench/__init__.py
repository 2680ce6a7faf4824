"""`finrisk bench`: benchmarks of the features, the predictor and the bridge, with the local
processes they start; development tooling, never in an image."""
