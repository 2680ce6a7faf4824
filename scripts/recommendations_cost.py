"""The recommendation search's cost per elevated row, in process (docs/serving.md quotes it).

Synthetic users (the demo's generator), the risk model trained as the pipeline trains it,
compiled as the predictor serves it; the search timed over every MEDIUM or HIGH user.
    .venv/bin/python scripts/recommendations_cost.py [USERS] [DAYS]
"""

from __future__ import annotations

import sys
import time

from finrisk.compiled import compile_model
from finrisk.features.batch import user_features
from finrisk.models import RiskModel
from finrisk.models.recommendations import RecommendationSearch
from finrisk.synthetic import generate


def main(users: int = 2000, days: int = 90) -> None:
    transactions, people, _ = generate(users, days, 7)
    features = user_features(transactions)
    risky = people.set_index("user_id").loc[features.index, "is_risky"].to_numpy().astype(int)
    for estimator in ("logistic", "hgb"):
        model = RiskModel(estimator=estimator).fit(features, risky)
        compiled = compile_model(model)
        values = features[list(compiled.feature_names)].to_numpy()
        probabilities = compiled.score(values)
        search = RecommendationSearch(compiled.score, compiled.feature_names, model.bands_)
        elevated = int(model.bands_.at_least(probabilities, "MEDIUM").sum())
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            found = search.search(values, probabilities)
            best = min(best, time.perf_counter() - start)
        empty = sum(1 for recs in found if recs == [])
        print(
            f"{estimator}: {len(values)} users, {elevated} elevated ({empty} with no allowed "
            f"change), grid {search.evaluations}: {best / max(elevated, 1) * 1e3:.2f} ms "
            "per elevated row"
        )


if __name__ == "__main__":
    main(*map(int, sys.argv[1:3]))
