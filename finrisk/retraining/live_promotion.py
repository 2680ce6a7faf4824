"""Promotion on live evidence: a pair the gate shadowed (`promotion="shadow"`) replaces the
champion once the labelled live traffic agrees.

`finrisk monitor` runs `judge_shadowed` each time. It judges only a detector `challenger` whose
registration says the gate shadowed it (`gate_decision=shadow`), beside the champion the gate
compared it with offline; the risk model's challenger must come from the same pipeline run,
because the pair is served together. The live verdict (finrisk.gate.live_verdict) compares the
realized metric of the champion and the challenger on the very transactions the bridge
shadowed, once enough of them are confirmed frauds; a pair that passes both is promoted (alias
`champion`), and the champion's predictor reloads it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from finrisk.gate import SHADOW, GateDecision, LiveEvidence, decide_live, live_verdict
from finrisk.kinds import DETECTOR, MODEL_KINDS, RISK
from finrisk.outcomes import Outcomes
from finrisk.registry.names import CHALLENGER, CHAMPION, TAG_PIPELINE_RUN_ID
from finrisk.retraining.registration import (
    TAG_GATE_CHAMPION_VERSION,
    TAG_GATE_DECISION,
    TAG_GATE_REASON,
    alias_versions,
    promote,
)
from finrisk.settings import MonitorSettings

# (champion_version, challenger_version) -> (champion, challenger) outcomes on the transactions
# the challenger shadowed: finrisk.monitoring.realized.shadowed_outcomes over the tables.
OutcomesReader = Callable[[str, str], tuple[Outcomes, Outcomes]]


@dataclass(frozen=True)
class ShadowJudgement:
    """What the live gate found; `decision` is None when there is nothing shadowed to judge."""

    reason: str
    champion: dict[str, str | None]  # kind -> version
    challenger: dict[str, str | None]
    decision: GateDecision | None = None
    evidence: LiveEvidence | None = None

    @property
    def promoted(self) -> bool:
        return self.decision is not None and self.decision.promote

    def signals(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "action": self.decision.action if self.decision else None,
            "champion": self.champion,
            "challenger": self.challenger,
        }
        if self.evidence is not None:
            for role, outcomes in (
                (CHAMPION, self.evidence.champion),
                (CHALLENGER, self.evidence.challenger),
            ):
                out[f"live_{role}"] = {
                    "scored": outcomes.scored,
                    "labelled": outcomes.labelled,
                    "confirmed_fraud": outcomes.confirmed_fraud,
                    "alerted": outcomes.alerted,
                    "true_alerts": outcomes.true_alerts,
                    "recall": outcomes.recall,
                    "alert_precision": outcomes.alert_precision,
                    "f1": outcomes.f1,
                }
        return out


def judge_shadowed(
    settings: MonitorSettings, outcomes: OutcomesReader, *, tracking_uri: str | None = None
) -> ShadowJudgement:
    """Judge the shadowed challenger pair, if any, and promote it when the gate says so
    (MLflow at `tracking_uri`; none: MLFLOW_TRACKING_URI, else the local stack's)."""
    names: Mapping[str, str] = {DETECTOR: settings.model, RISK: settings.risk_model}
    champions = alias_versions(CHAMPION, model_names=names, tracking_uri=tracking_uri)
    challengers = alias_versions(CHALLENGER, model_names=names, tracking_uri=tracking_uri)
    champion = {k: v.version if v else None for k, v in champions.items()}
    challenger = {k: v.version if v else None for k, v in challengers.items()}

    def nothing(reason: str) -> ShadowJudgement:
        return ShadowJudgement(reason, champion, challenger)

    shadowed, serving = challengers[DETECTOR], champions[DETECTOR]
    if shadowed is None or serving is None or shadowed.version == serving.version:
        return nothing("no challenger beside the champion")
    tags = shadowed.tags
    decided = tags.get(TAG_GATE_DECISION) or "none"
    if decided != SHADOW:
        return nothing(f"challenger v{shadowed.version} was not shadowed (gate: {decided})")
    partner = challengers[RISK]
    run = tags.get(TAG_PIPELINE_RUN_ID)
    if partner is None or partner.tags.get(TAG_PIPELINE_RUN_ID) != run:
        return nothing(
            f"the risk model's challenger is not from run {run} of detector "
            f"v{shadowed.version}: the pair is served together, so it is not promoted"
        )
    compared = tags.get(TAG_GATE_CHAMPION_VERSION)
    if compared != serving.version:
        return nothing(
            f"challenger v{shadowed.version} was judged offline against champion v{compared}; "
            f"the champion is now v{serving.version}: a new retraining run compares them"
        )
    theirs, ours = outcomes(serving.version, shadowed.version)
    evidence = LiveEvidence(serving.version, shadowed.version, theirs, ours)
    verdict = live_verdict(
        evidence,
        metric=settings.live_metric,
        min_frauds=settings.live_min_frauds,
        min_improvement=settings.live_min_improvement,
    )
    decision = decide_live(tags.get(TAG_GATE_REASON, ""), verdict)
    if decision.promote:
        versions = {kind: str(challenger[kind]) for kind in MODEL_KINDS}
        promote(versions, model_names=names, tracking_uri=tracking_uri)
    return ShadowJudgement(decision.reason, champion, challenger, decision, evidence)
