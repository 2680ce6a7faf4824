"""Gate: promote (or shadow) the challenger only when it beats the champion and clears the
floors."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Input, Markdown, Output

from finrisk.components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def gate_decision(
    evaluation: Input[Artifact],
    decision: Output[Markdown],
    detector_metric: str = "pr_auc",
    risk_metric: str = "roc_auc",
    min_improvement: float = 0.0,
    detector_floor: float = 0.5,
    risk_floor: float = 0.6,
    promotion: str = "offline",
) -> NamedTuple("GateOutputs", [("action", str), ("reason", str)]):  # type: ignore[valid-type]  # KFP output syntax
    """Decide from the evaluation (finrisk.gate.decide): promote, shadow or keep_champion; the
    reason is shown either way."""
    import json
    from collections import namedtuple

    from finrisk.gate import GatePolicy, decide

    with open(evaluation.path, encoding="utf-8") as source:
        result = json.load(source)
    policy = GatePolicy(
        detector_metric=detector_metric,
        risk_metric=risk_metric,
        min_improvement=min_improvement,
        detector_floor=detector_floor,
        risk_floor=risk_floor,
        promotion=promotion,
    )
    verdict = decide(result["challenger"], result["champion"] or None, policy)
    with open(decision.path, "w", encoding="utf-8") as out:
        out.write(verdict.to_markdown())
    print(verdict.reason)
    GateOutputs = namedtuple("GateOutputs", ["action", "reason"])
    return GateOutputs(verdict.action, verdict.reason)
