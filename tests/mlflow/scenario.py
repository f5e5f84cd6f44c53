"""A training script's use of the MLflow client, unchanged, against MLFLOW_TRACKING_URI.

It logs the way scripts and frameworks do (the fluent API, MlflowClient as Lightning's MLFlowLogger uses it,
artifacts, every end status, the errors clients branch on), then reads everything back through the client and
writes one JSON document (to the file named by its argument) of what the server holds, with ids and clock times taken out, so that two servers (labd
and a real `mlflow server`) can be compared. Floats are written as repr() so that bits compare.
"""

import json
import math
import os
import sys
import tempfile

import mlflow
import requests
from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException

URI = os.environ["MLFLOW_TRACKING_URI"]
mlflow.set_tracking_uri(URI)
client = MlflowClient()
out = {}


def f(v):
    return repr(float(v))


def error_code(call):
    try:
        call()
    except MlflowException as e:
        return e.error_code
    return None


# -- the fluent API, as a training script uses it ------------------------------------------------------------
exp = mlflow.set_experiment("scenario")
assert exp.lifecycle_stage == "active"
with mlflow.start_run(run_name="parent") as parent:
    mlflow.log_param("lr", 0.01)
    mlflow.log_params({"batch": 32, "optimizer": "adam", "layers.0": "64", "beta": "0.9000"})
    for step in range(5):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    mlflow.log_metric("loss", 0.125, step=4)  # the same step twice: both points are kept
    mlflow.log_metrics(
        {"acc": 0.5, "nan_metric": float("nan"), "inf_metric": float("inf"), "ninf": float("-inf"),
         "tiny": 5e-324, "third": 1 / 3, "neg_zero": -0.0},
        step=7,
    )
    mlflow.log_metric("train/loss", 0.75, step=1)
    mlflow.set_tag("team", "vision")
    mlflow.set_tags({"stage": "dev", "note": "to be removed"})
    with mlflow.start_run(run_name="child", nested=True):
        mlflow.log_metric("c", 1.0, step=0)
    folder = tempfile.mkdtemp()
    hello = os.path.join(folder, "hello.txt")
    with open(hello, "w") as fh:
        fh.write("hello world\n")
    mlflow.log_artifact(hello, "texts")
    mlflow.log_dict({"a": 1}, "cfg/config.json")
    mlflow.log_text("just text", "notes.txt")
    client.log_batch(
        parent.info.run_id,
        metrics=[Metric("batch_m", i * 0.1, 1_700_000_000_000 + i, i) for i in range(1000)],
        params=[Param("p_batch", "1")],
        tags=[RunTag("t_batch", "y")],
    )
    client.log_inputs(parent.info.run_id, datasets=[DatasetInput(
        Dataset(name="data", digest="d1", source_type="http", source='{"url": "https://example.org/data.csv"}'),
        tags=[InputTag("mlflow.data.context", "train")],
    )])
    # The same dataset (name and digest) again is kept once, the first; another digest is another dataset.
    client.log_inputs(parent.info.run_id, datasets=[
        DatasetInput(Dataset(name="data", digest="d1", source_type="http", source='{"url": "https://example.org/b"}'),
                     tags=[InputTag("mlflow.data.context", "eval")]),
        DatasetInput(Dataset(name="data", digest="d2", source_type="http", source='{}'),
                     tags=[InputTag("mlflow.data.context", "test")]),
    ])
run_id = parent.info.run_id
# The same point twice (a retried call, say) is kept once; another value at the same step and time is not.
for v in (1.0, 1.0, 2.0):
    client.log_metric(run_id, "dup", v, timestamp=1_700_000_000_000, step=0)
client.log_batch(run_id, metrics=[Metric("dup", 3.0, 1_700_000_000_001, 1)] * 2)

try:
    with mlflow.start_run(run_name="failing"):
        mlflow.log_metric("loss", 3.0)
        raise RuntimeError("boom")
except RuntimeError:
    pass

# -- MlflowClient as Lightning's MLFlowLogger drives it ------------------------------------------------------
logger_exp = client.get_experiment_by_name("lightning_logs")
assert logger_exp is None
logger_exp_id = client.create_experiment("lightning_logs", tags={"source": "logger"})
run = client.create_run(logger_exp_id, tags={"mlflow.runName": "logger-run"})
client.log_batch(run.info.run_id, params=[Param("hidden", "128"), Param("dropout", "0.1")])
for step in range(20):
    client.log_batch(run.info.run_id, metrics=[
        Metric("train_loss", 2.0 / (step + 1), 1_700_000_100_000 + step, step),
        Metric("epoch", float(step // 10), 1_700_000_100_000 + step, step),
    ])
client.set_terminated(run.info.run_id, "FINISHED")

mlflow.start_run(run_name="ended-by-hand", experiment_id=exp.experiment_id)
mlflow.end_run(status="KILLED")
killed = client.create_run(exp.experiment_id, run_name="killed")
client.set_terminated(killed.info.run_id, "KILLED")
deleted = client.create_run(exp.experiment_id, run_name="deleted")
client.delete_run(deleted.info.run_id)
client.update_run(killed.info.run_id, name="killed-renamed")

# -- the errors clients branch on ----------------------------------------------------------------------------
out["errors"] = {
    "param_changed": error_code(lambda: client.log_param(run_id, "lr", "0.02")),
    "param_same": error_code(lambda: client.log_param(run_id, "lr", "0.01")),
    "no_run": error_code(lambda: client.get_run("0123456789abcdef0123456789abcdef")),
    "no_experiment": error_code(lambda: client.get_experiment("987654")),
    "duplicate_experiment": error_code(lambda: client.create_experiment("scenario")),
    "bad_key": error_code(lambda: client.log_metric(run_id, "bad*key", 1.0)),
    "deleted_run": error_code(lambda: client.log_metric(deleted.info.run_id, "x", 1.0)),
    "too_many_params": requests.post(
        URI + "/api/2.0/mlflow/runs/log-batch",
        json={"run_id": run_id, "params": [{"key": f"k{i}", "value": "v"} for i in range(101)]},
    ).json().get("error_code"),
    "or_filter": error_code(lambda: client.search_runs([exp.experiment_id], "params.lr = '1' OR params.lr = '2'")),
    "missing_tag": error_code(lambda: client.delete_tag(run_id, "nope")),
}
client.delete_tag(run_id, "note")
client.set_experiment_tag(exp.experiment_id, "owner", "ana")

# -- an experiment deleted and restored takes its runs along -------------------------------------------------
life_id = client.create_experiment("lifecycle")
life_run = client.create_run(life_id, run_name="kept")
gone_run = client.create_run(life_id, run_name="deleted-before")
client.delete_run(gone_run.info.run_id)


def life_runs():
    return sorted((r.info.run_name, r.info.lifecycle_stage)
                  for r in client.search_runs([life_id], run_view_type=ViewType.ALL))


client.delete_experiment(life_id)
out["lifecycle_deleted"] = {
    "experiment": client.get_experiment(life_id).lifecycle_stage,
    "runs": life_runs(),
    "active_runs": [r.info.run_name for r in client.search_runs([life_id])],
    "active_experiments": sorted(e.name for e in client.search_experiments()),
    "log_to_run": error_code(lambda: client.log_metric(life_run.info.run_id, "x", 1.0)),
    "new_run": error_code(lambda: client.create_run(life_id)),
    "tag": error_code(lambda: client.set_experiment_tag(life_id, "k", "v")),
    "delete_again": error_code(lambda: client.delete_experiment(life_id)),
}
client.restore_experiment(life_id)
out["lifecycle_restored"] = {
    "experiment": client.get_experiment(life_id).lifecycle_stage,
    "runs": life_runs(),
    "restore_again": error_code(lambda: client.restore_experiment(life_id)),
}
client.rename_experiment(life_id, "lifecycle-renamed")
client.set_experiment_tag(life_id, "k", "v")
client.set_experiment_tag(life_id, "gone", "v")
client.delete_experiment_tag(life_id, "gone")
client.delete_run(life_run.info.run_id)
client.restore_run(life_run.info.run_id)
renamed = client.get_experiment_by_name("lifecycle-renamed")
out["lifecycle_final"] = {
    "name": renamed.name,
    "tags": sorted(renamed.tags.items()),
    "runs": life_runs(),
    "old_name": client.get_experiment_by_name("lifecycle"),
}

# -- long values: MLflow cuts a parameter over 6,000 characters and a tag over 8,000 and answers 200 ----------
long_exp = client.create_experiment("long-values")
long_run = client.create_run(long_exp, run_name="long")
client.log_param(long_run.info.run_id, "long", "p" * 7000)
client.set_tag(long_run.info.run_id, "long", "t" * 9000)
got = client.get_run(long_run.info.run_id)
out["long_values"] = [len(got.data.params["long"]), len(got.data.tags["long"])]

# -- the UI's sampled curves of several runs, in a window of steps -------------------------------------------
bulk_exp = client.create_experiment("bulk")
bulk_runs = {}
for name, steps in (("every", range(0, 51)), ("third", range(0, 101, 3))):
    r = client.create_run(bulk_exp, run_name=name)
    bulk_runs[r.info.run_id] = name
    for i in range(0, len(steps), 500):
        client.log_batch(r.info.run_id, metrics=[
            Metric("m", s * 0.5, 1_700_000_200_000 + s, s) for s in list(steps)[i:i + 500]])


def bulk_interval(**params):
    got = requests.get(URI + "/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval", params={
        "run_ids": list(bulk_runs), "metric_key": "m", **params})
    body = got.json()
    if got.status_code != 200:
        return body.get("error_code")
    return [(bulk_runs[m["run_id"]], m["step"], m["timestamp"], f(m["value"])) for m in body.get("metrics", [])]


out["bulk_runs"] = {
    "all": bulk_interval(max_results=4),
    "window": bulk_interval(start_step=10, end_step=60, max_results=5),
    "one_bound": bulk_interval(start_step=10),
    "reversed": bulk_interval(start_step=60, end_step=10),
}


# -- read it all back ----------------------------------------------------------------------------------------
def describe(r, names):
    tags = {k: v for k, v in r.data.tags.items() if not k.startswith("mlflow.source.") and k != "mlflow.user"}
    if "mlflow.parentRunId" in tags:
        tags["mlflow.parentRunId"] = names[tags["mlflow.parentRunId"]]
    return {
        "name": r.info.run_name,
        "status": r.info.status,
        "lifecycle": r.info.lifecycle_stage,
        "ended": r.info.end_time is not None,
        "params": r.data.params,
        "tags": tags,
        "metrics": {k: f(v) for k, v in r.data.metrics.items()},
        "inputs": sorted(
            (i.dataset.name, i.dataset.digest, [t.value for t in i.tags]) for i in r.inputs.dataset_inputs
        ) if r.inputs else [],
    }


all_runs = client.search_runs([exp.experiment_id, logger_exp_id], "", run_view_type=ViewType.ALL, max_results=100)
names = {r.info.run_id: r.info.run_name for r in all_runs}
out["runs"] = sorted((describe(r, names) for r in all_runs), key=lambda d: d["name"])
out["active_runs"] = sorted(r.info.run_name for r in client.search_runs([exp.experiment_id]))
out["history_loss"] = [(m.step, f(m.value)) for m in client.get_metric_history(run_id, "loss")]
out["history_batch"] = [(m.step, m.timestamp, f(m.value)) for m in client.get_metric_history(run_id, "batch_m")]
out["history_dup"] = [(m.step, m.timestamp, f(m.value)) for m in client.get_metric_history(run_id, "dup")]
out["history_missing"] = client.get_metric_history(run_id, "no_such_metric")
out["search"] = [r.info.run_name for r in client.search_runs(
    [exp.experiment_id], "params.lr = '0.01' and metrics.loss < 1", order_by=["metrics.loss DESC"])]
out["search_like"] = [r.info.run_name for r in client.search_runs([exp.experiment_id], "tags.team LIKE 'vis%'")]
out["search_status"] = sorted(r.info.run_name for r in client.search_runs(
    [exp.experiment_id], "attributes.status = 'FAILED'"))
out["search_order"] = [r.info.run_name for r in client.search_runs(
    [exp.experiment_id], "", order_by=["attributes.run_name ASC"])]
paged, token = [], None
while True:
    page = client.search_runs([exp.experiment_id], "", max_results=2, order_by=["attributes.run_name ASC"],
                              page_token=token)
    paged += [r.info.run_name for r in page]
    token = page.token
    if not token:
        break
out["paged"] = paged
out["fluent_search"] = sorted(r.info.run_name for r in mlflow.search_runs(
    experiment_ids=[exp.experiment_id], filter_string="metrics.acc = 0.5", output_format="list"))
out["artifacts_root"] = sorted((a.path, a.is_dir) for a in client.list_artifacts(run_id))
out["artifacts_texts"] = [(a.path, a.file_size) for a in client.list_artifacts(run_id, "texts")]
# What MLflow's UI reads: the tracking side's list, and the artifact store under the UI's prefix.
out["artifacts_ui_list"] = requests.get(URI + "/ajax-api/2.0/mlflow/artifacts/list", params={
    "run_id": run_id, "path": "texts"}).json().get("files")
out["artifacts_ui_store"] = requests.get(URI + "/ajax-api/2.0/mlflow-artifacts/artifacts", params={
    "path": f"{exp.experiment_id}/{run_id}/artifacts/cfg"}).json()
out["artifact_ui_download"] = requests.get(
    URI + f"/ajax-api/2.0/mlflow-artifacts/artifacts/{exp.experiment_id}/{run_id}/artifacts/notes.txt").text
with open(client.download_artifacts(run_id, "texts/hello.txt", tempfile.mkdtemp())) as fh:
    out["artifact_text"] = fh.read()
out["experiments"] = sorted(
    (e.name, e.lifecycle_stage, sorted(e.tags.items())) for e in client.search_experiments())
out["experiment_by_filter"] = [e.name for e in client.search_experiments(filter_string="name LIKE 'scen%'")]
bulk = requests.get(URI + "/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval", params={
    "run_ids": [run_id], "metric_key": "batch_m", "max_results": 10}).json()
out["bulk_steps"] = [m["step"] for m in bulk.get("metrics", [])]
out["run_id"] = run_id
out["logger_run_id"] = run.info.run_id
with open(sys.argv[1], "w") as fh:
    json.dump(out, fh, sort_keys=True, indent=1)
