"""The end-to-end demo (`finrisk demo`, `make demo`): `run` drives it, `summary` reports it,
`options` sizes it. Nothing is imported here, so the CLI can read the options cheaply."""
