"""Registers a trained model directory (train.py's output) as a new version of a registered model in an MLflow
tracking server, the way a data scientist's pipeline does: the files are logged as a run's artifacts (through the
server's artifact proxy), a model version is created from them, and an alias may point at it. Prints the version
as JSON: {"name": ..., "version": ..., "source": ..., "alias": ...}.

    MLFLOW_TRACKING_URI=http://... python register.py MODEL_DIR --name iris [--alias champion]
"""
import argparse
import json
import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import mlflow  # noqa: E402
from mlflow import MlflowClient  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir")
    parser.add_argument("--name", required=True)
    parser.add_argument("--alias")
    args = parser.parse_args()

    client = MlflowClient()
    mlflow.set_experiment(args.name)
    with mlflow.start_run() as run:
        mlflow.log_artifacts(args.model_dir, artifact_path="model")
        source = f"{run.info.artifact_uri}/model"
    try:
        client.create_registered_model(args.name)
    except mlflow.exceptions.MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    mv = client.create_model_version(args.name, source, run_id=run.info.run_id)
    if args.alias:
        client.set_registered_model_alias(args.name, args.alias, mv.version)
    print(json.dumps({"name": args.name, "version": mv.version, "source": mv.source, "alias": args.alias}))


if __name__ == "__main__":
    main()
