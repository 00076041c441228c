"""Trains a real scikit-learn model on a data set that ships with scikit-learn (iris), saves it the way MLServer's
SKLearn runtime loads it (model.joblib), and writes the predictions the same model gives offline on held-out rows,
so a test can compare what the server answers with what the model says.

    python train.py OUT_DIR [--version N]
"""
import argparse
import json
import os

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--version", type=int, default=1, help="a different version trains on a different split")
    args = parser.parse_args()

    x, y = load_iris(return_X_y=True)
    x_train, x_test, y_train, _ = train_test_split(x, y, test_size=0.2, random_state=args.version)
    model = LogisticRegression(max_iter=500, random_state=0).fit(x_train, y_train)

    os.makedirs(args.out, exist_ok=True)
    joblib.dump(model, os.path.join(args.out, "model.joblib"))
    with open(os.path.join(args.out, "offline.json"), "w") as f:
        json.dump({"rows": x_test.tolist(), "predictions": model.predict(x_test).tolist()}, f)


if __name__ == "__main__":
    main()
