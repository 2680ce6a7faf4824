"""Promotion on live evidence: a pair the gate shadowed (`promotion="shadow"`) replaces the
champion once the labelled live traffic agrees.

`finrisk monitor` runs `judge_shadowed` each time. It judges only a detector `challenger` whose
registration says the gate shadowed it (`gate_decision=shadow`), beside the champion the gate
compared it with offline; the risk model's challenger must come from the same pipeline run,
because the pair is served together. The live verdict (finrisk.gate.live_verdict) compares the
realized metric of the champion and the challenger on the very transactions the bridge
shadowed, once enough of them are confirmed frauds. A pair that passes both is rolled out on
the champion's InferenceService when the settings name one (the deploy step pins versions
there, so its predictor no longer follows the alias), then promoted (alias `champion`, both
models; a move that stops half way is put back, or finished by the next evaluation).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finrisk import registry
from finrisk.errors import FinriskError
from finrisk.gate import SHADOW, GateDecision, LiveEvidence, decide_live, live_verdict
from finrisk.kinds import DETECTOR, MODEL_KINDS, RISK
from finrisk.outcomes import Outcomes
from finrisk.registry.names import CHALLENGER, CHAMPION, TAG_PIPELINE_RUN_ID
from finrisk.retraining.registration import (
    TAG_GATE_CHAMPION_VERSION,
    TAG_GATE_DECISION,
    TAG_GATE_REASON,
    alias_versions,
)
from finrisk.settings import MonitorSettings

# (champion_version, challenger_version) -> (champion, challenger) outcomes on the transactions
# the challenger shadowed: finrisk.monitoring.realized.shadowed_outcomes over the tables.
OutcomesReader = Callable[[str, str], tuple[Outcomes, Outcomes]]
# kind -> version of the pair to serve: rolls it out (or raises, having put back what it
# changed) and says what it did.
Rollout = Callable[[Mapping[str, str]], str]
log = logging.getLogger(__name__)


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
    settings: MonitorSettings,
    outcomes: OutcomesReader,
    *,
    tracking_uri: str | None = None,
    rollout: Rollout | None = None,
) -> ShadowJudgement:
    """Judge the shadowed challenger pair, if any, and promote it when the gate says so: roll it
    out first when `rollout` is given (an InferenceService pinned to versions does not follow
    the aliases), then move both aliases. MLflow at `tracking_uri` (none: MLFLOW_TRACKING_URI,
    else the local stack's)."""
    names: Mapping[str, str] = {DETECTOR: settings.model, RISK: settings.risk_model}
    champions = alias_versions(CHAMPION, model_names=names, tracking_uri=tracking_uri)
    challengers = alias_versions(CHALLENGER, model_names=names, tracking_uri=tracking_uri)
    champion = {k: v.version if v else None for k, v in champions.items()}
    challenger = {k: v.version if v else None for k, v in challengers.items()}

    def nothing(reason: str) -> ShadowJudgement:
        return ShadowJudgement(reason, champion, challenger)

    shadowed, serving = challengers[DETECTOR], champions[DETECTOR]
    if shadowed is None or serving is None:
        return nothing("no challenger beside the champion")
    tags = shadowed.tags or {}
    partner = challengers[RISK]
    run = tags.get(TAG_PIPELINE_RUN_ID)
    same_run = (
        bool(run) and partner is not None and (partner.tags or {}).get(TAG_PIPELINE_RUN_ID) == run
    )
    if shadowed.version == serving.version:
        if (
            same_run
            and tags.get(TAG_GATE_DECISION) == SHADOW
            and champion[RISK] != challenger[RISK]
        ):
            # A promotion stopped between the two aliases: finish it, or the pair stays split.
            _set_champions({RISK: str(challenger[RISK])}, names, tracking_uri)
            return nothing(
                f"finished a promotion left half done: {names[RISK]} champion "
                f"v{champion[RISK]} -> v{challenger[RISK]}, as {names[DETECTOR]}'s"
            )
        return nothing("no challenger beside the champion")
    decided = {
        kind: (v.tags or {}).get(TAG_GATE_DECISION) if v else None
        for kind, v in challengers.items()
    }
    if decided[DETECTOR] != SHADOW:
        return nothing(
            f"challenger v{shadowed.version} was not shadowed (gate: {decided[DETECTOR] or 'none'})"
        )
    if not same_run or decided[RISK] != SHADOW:
        return nothing(
            f"the risk model's challenger is not the shadowed pair of run {run or 'unknown'} "
            f"with detector v{shadowed.version}: the pair is served together, so it is not "
            "promoted"
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
        rolled = rollout(versions) if rollout is not None else "predictors follow the aliases"
        _set_champions(versions, names, tracking_uri, previous=champion)
        reason = f"{decision.reason} ({rolled})"
        return ShadowJudgement(reason, champion, challenger, decision, evidence)
    return ShadowJudgement(decision.reason, champion, challenger, decision, evidence)


def _set_champions(
    versions: Mapping[str, str],
    names: Mapping[str, str],
    tracking_uri: str | None,
    *,
    previous: Mapping[str, str | None] | None = None,
) -> None:
    """Move alias `champion` of each kind given; when one move fails after another succeeded,
    put the moved ones back (best effort: what could not be put back, the next evaluation
    finishes), then raise."""
    moved: list[str] = []
    try:
        for kind, version in versions.items():
            registry.set_alias(names[kind], CHAMPION, version, tracking_uri=tracking_uri)
            moved.append(kind)
    except FinriskError as exc:
        for kind in moved:
            before = (previous or {}).get(kind)
            if before is None:
                continue
            try:
                registry.set_alias(names[kind], CHAMPION, before, tracking_uri=tracking_uri)
            except FinriskError:
                log.warning("could not put %s's champion back to v%s", names[kind], before)
        raise FinriskError(f"promoting {dict(versions)} stopped: {exc}") from None


def cluster_rollout(settings: MonitorSettings) -> Rollout | None:
    """The rollout of a promoted pair on the InferenceService the settings name (the pipeline's
    deploy step's code: Ready and serving its versions, or put back and raise); none when the
    predictors follow the aliases themselves."""
    if settings.inference_service is None:
        return None
    service = settings.inference_service

    def roll_out(versions: Mapping[str, str]) -> str:
        from finrisk.deploy import ModelRef, deploy
        from finrisk.deploy import Rollout as Plan
        from finrisk.deploy.inference_service import DETECTOR_MODEL_ENV, RISK_MODEL_ENV

        plan = Plan(
            name=service,
            namespace=settings.inference_service_namespace,
            detector=ModelRef(settings.model, versions[DETECTOR], DETECTOR_MODEL_ENV),
            risk=ModelRef(settings.risk_model, versions[RISK], RISK_MODEL_ENV),
            annotations={"finrisk.io/promoted-by": "finrisk-monitor-live-gate"},
        )
        with tempfile.TemporaryDirectory() as folder:
            result = deploy(
                plan,
                manifest_path=Path(folder) / "manifest.yaml",
                timeout_s=settings.rollout_timeout_s,
            )
        return f"{result.action}: InferenceService {result.namespace}/{result.name}"

    return roll_out
