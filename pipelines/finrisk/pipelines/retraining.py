"""The retraining DAG.

    check drift -+-> (nothing changed) skip training (the reason)
                 +-> (train) ingest ...:
    ingest -> validate -+-> (invalid) fail_run
                        +-> (valid) features -+-> train detector --+-> evaluate -> gate -> register
                                              +-> train risk model +               |
                        (gate: promote) deploy challenger -> promote champion <----+
                        (gate: shadow)  shadow challenger (`finrisk monitor` promotes it live)
                        (gate: keep)    keep champion (the reason)

The check (finrisk.monitoring.policy, as `finrisk monitor` applies it) decides whether the run
trains: `force_training` (default true: a run someone started trains, and `finrisk monitor`
starts runs only after deciding itself) skips it; `finrisk pipeline schedule` sets it false,
so scheduled runs train only when the drift or realized metrics say so.

With `promotion="shadow"` a pair that passes beside a champion stays `challenger` (a
predictor serving that alias reloads it, and the bridge shadows it on live traffic); `finrisk
monitor` promotes it once the realized metrics on the shadowed traffic agree (finrisk.gate).

With `bigquery_labels_table`, ingest keeps the confirmed labels beside the transactions and the
detector trains as `finrisk train --labels` does: with merchant risk, and only on labels known
`label_delay_days` before the test cut-off (without a labels table, or with
`detector_merchant_risk` false, it trains as before).

The challenger is rolled out, Ready and answering for its versions before its alias becomes
`champion`: a failed rollout is put back and no alias moves.

Secrets and configuration reach the tasks by reference through kfp-kubernetes (ConfigMap
`finrisk-config`, optional Secrets for MLflow and BigQuery credentials); locally those
settings are ignored and the tasks read the caller's environment instead.
"""

from kfp import dsl, kubernetes

from finrisk.components import (
    build_features,
    check_drift,
    deploy_challenger,
    evaluate_models,
    fail_run,
    gate_decision,
    ingest_data,
    keep_champion,
    promote_champion,
    register_challenger,
    shadow_challenger,
    train_detector,
    train_risk_model,
    validate_data,
)
from finrisk.deploy import cluster
from finrisk.evaluation.split import FRAUD_LABEL_DELAY_DAYS
from finrisk.gate import PROMOTE, SHADOW
from finrisk.kinds import DEFAULT_MODEL_NAMES, DETECTOR, RISK

PIPELINE_NAME = "finrisk-retraining"
PIPELINE_DESCRIPTION = (
    "finrisk retraining: ingest, validate, features, train the transaction anomaly detector and "
    "the user risk model, evaluate against the seed-style baseline and the champion, gate, "
    "register in MLflow (challenger / champion aliases) and roll the champion out to KServe."
)

# Requests and limits per kind of task (the cluster schedules by them).
LIGHT = {"cpu": ("250m", "1"), "memory": ("512M", "2G")}
HEAVY = {"cpu": ("1", "4"), "memory": ("2G", "8G")}


def _resources(task: dsl.PipelineTask, sizes: dict[str, tuple[str, str]]) -> dsl.PipelineTask:
    cpu, memory = sizes["cpu"], sizes["memory"]
    return (
        task.set_cpu_request(cpu[0])
        .set_cpu_limit(cpu[1])
        .set_memory_request(memory[0])
        .set_memory_limit(memory[1])
    )


def _mlflow(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """The tracking URI from the ConfigMap, credentials from an optional Secret."""
    kubernetes.use_config_map_as_env(
        task, cluster.CONFIG_MAP, {cluster.MLFLOW_URI_KEY: cluster.MLFLOW_URI_KEY}
    )
    kubernetes.use_secret_as_env(
        task,
        cluster.MLFLOW_SECRET,
        {key: key for key in (cluster.MLFLOW_USERNAME_KEY, cluster.MLFLOW_PASSWORD_KEY)},
        optional=True,
    )
    return task


def _bigquery(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """A service-account key from an optional Secret (Workload Identity needs none), and
    optional endpoints (the emulator's API and Read API) from the ConfigMap."""
    kubernetes.use_secret_as_env(
        task,
        cluster.BIGQUERY_SECRET,
        {cluster.BIGQUERY_KEY: cluster.BIGQUERY_CREDENTIALS_ENV},
        optional=True,
    )
    kubernetes.use_config_map_as_env(
        task,
        cluster.CONFIG_MAP,
        {key: key for key in cluster.BIGQUERY_CONFIG_KEYS},
        optional=True,
    )
    return task


@dsl.pipeline(name=PIPELINE_NAME, description=PIPELINE_DESCRIPTION)
def retraining_pipeline(
    data_source: str = "synthetic",
    data_uri: str = "",
    users_uri: str = "",
    bigquery_table: str = "",
    bigquery_users_table: str = "",
    bigquery_labels_table: str = "",
    label_maturity_days: float = 60.0,
    label_delay_days: float = FRAUD_LABEL_DELAY_DAYS,
    detector_merchant_risk: bool = True,
    bigquery_sql_features: bool = True,
    bigquery_sample_share: float = 1.0,
    bigquery_sample_rows: int = 0,
    bigquery_page_size: int = 10_000,
    synthetic_users: int = 2000,
    synthetic_days: int = 90,
    seed: int = 0,
    detector_params: str = "{}",
    risk_params: str = "{}",
    detector_metric: str = "pr_auc",
    risk_metric: str = "roc_auc",
    min_improvement: float = 0.0,
    detector_floor: float = 0.5,
    risk_floor: float = 0.6,
    promotion: str = "offline",
    detector_model_name: str = DEFAULT_MODEL_NAMES[DETECTOR],
    risk_model_name: str = DEFAULT_MODEL_NAMES[RISK],
    mlflow_experiment: str = "finrisk-retraining",
    inference_service: str = "finrisk",
    namespace: str = "finrisk",
    predictor_image: str = "",
    canary_traffic_percent: int = 0,
    deploy_timeout_seconds: int = 600,
    deploy_dry_run: bool = False,
    deploy_server_dry_run: bool = False,
    force_training: bool = True,
    monitor_config: str = "{}",
) -> None:
    check = check_drift(
        force=force_training,
        monitor_config=monitor_config,
        pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
    ).set_display_name("check drift")
    # The tables change under the same arguments: decide afresh every run.
    check.set_caching_options(False)
    _bigquery(_resources(check, LIGHT))

    with dsl.If(check.outputs["train"] == True, name="training-needed"):  # noqa: E712
        ingest = ingest_data(
            source=data_source,
            data_uri=data_uri,
            users_uri=users_uri,
            bigquery_table=bigquery_table,
            bigquery_users_table=bigquery_users_table,
            bigquery_labels_table=bigquery_labels_table,
            label_maturity_days=label_maturity_days,
            bigquery_sql_features=bigquery_sql_features,
            bigquery_sample_share=bigquery_sample_share,
            bigquery_sample_rows=bigquery_sample_rows,
            bigquery_page_size=bigquery_page_size,
            synthetic_users=synthetic_users,
            synthetic_days=synthetic_days,
            seed=seed,
        ).set_display_name("ingest")
        # Sources change under the same arguments: always read them afresh (recurring runs too).
        ingest.set_caching_options(False)
        _bigquery(_resources(ingest, LIGHT))

        validate = validate_data(raw_data=ingest.outputs["raw_data"]).set_display_name("validate")
        _resources(validate, LIGHT)

        with dsl.If(validate.outputs["passed"] == False, name="data-invalid"):  # noqa: E712
            fail_run(reason=validate.outputs["summary"]).set_display_name("fail: invalid data")

        with dsl.Else(name="data-valid"):
            features = build_features(dataset=validate.outputs["dataset"]).set_display_name(
                "features"
            )
            _resources(features, HEAVY)

            # With a labels table: merchant risk, and only labels known at the cut-off.
            detector = train_detector(
                dataset=validate.outputs["dataset"],
                seed=seed,
                params_json=detector_params,
                label_delay_days=label_delay_days,
                merchant_risk=detector_merchant_risk,
            ).set_display_name("train detector")
            _resources(detector, HEAVY)

            risk = train_risk_model(
                user_features=features.outputs["user_features"], seed=seed, params_json=risk_params
            ).set_display_name("train risk model")
            _resources(risk, HEAVY)

            evaluate = evaluate_models(
                detector_run=detector.outputs["training_run"],
                risk_run=risk.outputs["training_run"],
                transaction_features=features.outputs["transaction_features"],
                user_features=features.outputs["user_features"],
                detector_model_name=detector_model_name,
                risk_model_name=risk_model_name,
            ).set_display_name("evaluate")
            # The champion it compares with lives outside the pipeline: never reuse a result.
            evaluate.set_caching_options(False)
            _mlflow(_resources(evaluate, HEAVY))

            decision = gate_decision(
                evaluation=evaluate.outputs["evaluation"],
                detector_metric=detector_metric,
                risk_metric=risk_metric,
                min_improvement=min_improvement,
                detector_floor=detector_floor,
                risk_floor=risk_floor,
                promotion=promotion,
            ).set_display_name("gate")
            decision.set_caching_options(False)
            _resources(decision, LIGHT)

            register = register_challenger(
                detector_model=detector.outputs["model"],
                risk_model=risk.outputs["model"],
                evaluation=evaluate.outputs["evaluation"],
                data_fingerprint=validate.outputs["fingerprint"],
                gate_action=decision.outputs["action"],
                gate_reason=decision.outputs["reason"],
                pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                pipeline_run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
                detector_model_name=detector_model_name,
                risk_model_name=risk_model_name,
                experiment=mlflow_experiment,
            ).set_display_name("register challenger")
            register.set_caching_options(False)
            _mlflow(_resources(register, LIGHT))

            with dsl.If(decision.outputs["action"] == PROMOTE, name="challenger-wins"):
                deploy = deploy_challenger(
                    detector_version=register.outputs["detector_version"],
                    risk_version=register.outputs["risk_version"],
                    pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                    detector_model_name=detector_model_name,
                    risk_model_name=risk_model_name,
                    inference_service=inference_service,
                    namespace=namespace,
                    predictor_image=predictor_image,
                    canary_traffic_percent=canary_traffic_percent,
                    timeout_seconds=deploy_timeout_seconds,
                    dry_run=deploy_dry_run,
                    server_dry_run=deploy_server_dry_run,
                ).set_display_name("deploy challenger")
                deploy.set_caching_options(False)
                _resources(deploy, LIGHT)

                promote = promote_champion(
                    detector_version=register.outputs["detector_version"],
                    risk_version=register.outputs["risk_version"],
                    detector_model_name=detector_model_name,
                    risk_model_name=risk_model_name,
                ).set_display_name("promote champion")
                promote.after(deploy)  # only once the rollout serves
                promote.set_caching_options(False)
                _mlflow(_resources(promote, LIGHT))

            with dsl.Elif(decision.outputs["action"] == SHADOW, name="challenger-shadowed"):
                # The challenger alias is set by the registration: nothing to roll out here.
                shadow = shadow_challenger(reason=decision.outputs["reason"]).set_display_name(
                    "shadow challenger"
                )
                shadow.set_caching_options(False)
                _resources(shadow, LIGHT)

            with dsl.Else(name="champion-stays"):
                keep = keep_champion(reason=decision.outputs["reason"]).set_display_name(
                    "keep champion"
                )
                keep.set_caching_options(False)
                _resources(keep, LIGHT)

    with dsl.Else(name="nothing-changed"):
        skip = keep_champion(reason=check.outputs["reason"]).set_display_name("skip training")
        skip.set_caching_options(False)
        _resources(skip, LIGHT)
