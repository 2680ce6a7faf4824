"""Training: the transaction anomaly detector and the user risk model (they run in parallel)."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from finrisk.components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def train_detector(
    dataset: Input[Dataset],
    model: Output[Model],
    training_run: Output[Artifact],
    # No default here: KFP runs this function from its source text, where a name would not
    # resolve; the pipeline's parameter holds the one default (FRAUD_LABEL_DELAY_DAYS).
    label_delay_days: float,
    merchant_risk: bool,
    seed: int = 0,
    params_json: str = "{}",
) -> str:
    """Our detector and the seed-style baseline on the early period; returns the mode used.
    When the dataset holds labels (a labels table was read) and `merchant_risk` is set, ours
    also reads merchant risk and trains only on labels known `label_delay_days` before the test
    cut-off, as `finrisk train --labels` does (finrisk.retraining.training.train_detector)."""
    import json

    from finrisk.retraining.training import TrainingOptions
    from finrisk.retraining.training import train_detector as train

    options = TrainingOptions(seed=seed, params=json.loads(params_json or "{}"))
    run = train(
        dataset.path, model.path, training_run.path, options, label_delay_days, merchant_risk
    )
    model.metadata.update(
        {
            "framework": "scikit-learn",
            "finrisk_kind": "detector",
            "threshold": float(run.ours.threshold_),
            "feature_names": list(run.ours.feature_names_),
            "label_delay_days": run.split.label_delay_days,
            **run.facts,
        }
    )
    return str(run.facts["ours_mode"])


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def train_risk_model(
    user_features: Input[Dataset],
    model: Output[Model],
    training_run: Output[Artifact],
    seed: int = 0,
    params_json: str = "{}",
) -> int:
    """Our calibrated risk model and the seed-style baseline; returns the training user count."""
    import json

    from finrisk.retraining.training import TrainingOptions
    from finrisk.retraining.training import train_risk as train

    options = TrainingOptions(seed=seed, params=json.loads(params_json or "{}"))
    run = train(user_features.path, model.path, training_run.path, options)
    model.metadata.update({"framework": "scikit-learn", "finrisk_kind": "risk", **run.facts})
    return len(run.split.train)
