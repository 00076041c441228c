"""Trains real scikit-learn models on a data set that ships with scikit-learn (iris, plus a categorical column
derived from it: the petal-size band), saves each the way MLServer's SKLearn runtime loads it (model.joblib), and
writes the predictions it gives offline on held-out rows, so a test can compare what a server answers with what
the model says. The kinds behave like real releases, good and bad, by what they are, not by switches:

  good       one-hot encodes the band (ignoring bands it has not seen), strongly regularised logistic regression
  better     the same features, gradient boosting: more accurate on the held-out rows
  strict     the same as good, but its encoder refuses bands it has not seen (handle_unknown="error"): traffic with
             a new band (a new product line, a renamed region) fails with an error response, row by row
  slow       the same features, a random forest of 300 trees: answers as good, measurably slower

    python train.py OUT_DIR [--kind good|better|strict|slow] [--version N]
"""
import argparse
import json
import os

import joblib
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

NUMERIC = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
BANDS = ["small", "medium", "large"]


def frame() -> tuple[pd.DataFrame, pd.Series]:
    iris = load_iris(as_frame=True)
    x = iris.data.copy()
    x.columns = NUMERIC
    x["band"] = pd.cut(x["petal_length"], bins=[0, 2.5, 5.0, 10], labels=BANDS).astype(str)
    return x, iris.target


def model(kind: str) -> Pipeline:
    unknown = "error" if kind == "strict" else "ignore"
    features = ColumnTransformer([("num", "passthrough", NUMERIC), ("band", OneHotEncoder(handle_unknown=unknown), ["band"])])
    classifier = {
        # Strongly regularised: a sound model with room to improve.
        "good": LogisticRegression(C=0.02, max_iter=1000, random_state=0),
        "strict": LogisticRegression(C=0.02, max_iter=1000, random_state=0),
        "better": GradientBoostingClassifier(random_state=0),
        "slow": RandomForestClassifier(n_estimators=300, random_state=0),
    }[kind]
    return Pipeline([("features", features), ("classifier", classifier)])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--kind", default="good", choices=["good", "better", "strict", "slow"])
    parser.add_argument("--version", type=int, default=1, help="a different version trains on a different split")
    args = parser.parse_args()

    x, y = frame()
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=args.version, stratify=y)
    fitted = model(args.kind).fit(x_train, y_train)

    os.makedirs(args.out, exist_ok=True)
    joblib.dump(fitted, os.path.join(args.out, "model.joblib"))
    predictions = fitted.predict(x_test)
    with open(os.path.join(args.out, "offline.json"), "w") as f:
        json.dump({
            "kind": args.kind,
            "columns": list(x_test.columns),
            "rows": x_test.astype(object).values.tolist(),
            "predictions": predictions.tolist(),
            "accuracy": float((predictions == y_test.values).mean()),
        }, f)


if __name__ == "__main__":
    main()
