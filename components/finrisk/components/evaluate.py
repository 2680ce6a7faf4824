"""Evaluate: challenger vs seed-style baseline vs champion, as the Kubeflow UI shows them."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Output

from finrisk.components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def evaluate_models(
    detector_run: Input[Artifact],
    risk_run: Input[Artifact],
    transaction_features: Input[Dataset],
    user_features: Input[Dataset],
    metrics: Output[Metrics],
    detector_classification: Output[ClassificationMetrics],
    risk_classification: Output[ClassificationMetrics],
    detector_report: Output[HTML],
    risk_report: Output[HTML],
    summary: Output[Markdown],
    evaluation: Output[Artifact],
    detector_model_name: str,
    risk_model_name: str,
):
    """Score both challengers on held-out data and the current champions on the same rows."""
    import json
    import shutil
    import tempfile

    from finrisk.evaluation.runs import AnomalyRun, RiskRun
    from finrisk.retraining import evaluation as ev
    from finrisk.retraining.registration import load_champions
    from finrisk.retraining.training import load_run

    det = load_run(detector_run.path, AnomalyRun)
    risk = load_run(risk_run.path, RiskRun)
    champions = load_champions(
        model_names={"detector": detector_model_name, "risk": risk_model_name}
    )
    with tempfile.TemporaryDirectory() as tmp:
        result = ev.evaluate(
            det,
            risk,
            tmp,
            transaction_features_path=transaction_features.path,
            user_features_path=user_features.path,
            champions=champions,
        )
        shutil.copyfile(result.reports["detector"], detector_report.path)
        shutil.copyfile(result.reports["risk"], risk_report.path)
    for name, value in ev.flat_metrics(result).items():
        metrics.log_metric(name, value)
    curves = ev.classification_data(det, risk)
    for kind, output in (("detector", detector_classification), ("risk", risk_classification)):
        output.log_roc_curve(curves[kind].fpr, curves[kind].tpr, curves[kind].thresholds)
        output.log_confusion_matrix(curves[kind].classes, curves[kind].matrix)
    with open(summary.path, "w", encoding="utf-8") as out:
        out.write(ev.summary_markdown(result))
    with open(evaluation.path, "w", encoding="utf-8") as out:
        json.dump(result.to_dict(), out, indent=2, default=str)
