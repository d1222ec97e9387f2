"""Classification metrics in one evaluate module: accuracy; precision, recall and F1 (macro,
weighted and per class); the confusion matrix. All computed by scikit-learn.

One module rather than one per metric: evaluate copies every batch into an Arrow table before
computing, so one module means one copy of the predictions, not five.

Macro and weighted averages are over the classes present in the references (tunedeck's
historical definition: a class absent from the validation split has no recall to average).
Pass ``average_over="all"`` to average over every class in ``labels`` instead.
"""

import warnings

import datasets
import evaluate
import numpy as np
from sklearn.metrics import accuracy_score
from sklearn.metrics import confusion_matrix
from sklearn.metrics import precision_recall_fscore_support

# evaluate's dependency scanner (loading.get_imports) reads one import per line: keep it so.
# Import `evaluate` itself, never `from evaluate import Metric`: evaluate.load picks the first
# EvaluationModule subclass in this module's namespace, which would then be Metric itself.

_DESCRIPTION = "Accuracy, precision/recall/F1 (macro, weighted, per class) and the confusion matrix."

_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted class ids (int).
    references: true class ids (int).
    labels: class ids that the per-class arrays and the confusion matrix cover, in order
        (default: the sorted union of predictions and references).
    average_over: "present" (default) averages macro/weighted scores over the classes present
        in the references; "all" averages over every class in labels.
Returns:
    accuracy, precision_macro, recall_macro, f1_macro, precision_weighted, recall_weighted,
    f1_weighted (floats); labels, per_class_precision, per_class_recall, per_class_f1,
    per_class_support (lists aligned with labels); confusion_matrix (rows: true, cols: predicted).
"""


class Classification(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "predictions": datasets.Value("int64"),
                "references": datasets.Value("int64"),
            }),
            reference_urls=["https://scikit-learn.org/stable/modules/model_evaluation.html"],
        )

    def _compute(self, predictions, references, labels=None, average_over="present"):
        y_pred = np.asarray(predictions, dtype=np.int64)
        y_true = np.asarray(references, dtype=np.int64)
        if labels is None:
            labels = np.union1d(y_true, y_pred)
        labels = [int(x) for x in labels]
        if average_over == "present":
            present = set(y_true.tolist())
            averaged = [x for x in labels if x in present]
        elif average_over == "all":
            averaged = labels
        else:
            raise ValueError(f"average_over must be 'present' or 'all', not {average_over!r}")
        if len(y_true) == 0:
            return _empty_result(labels)
        result = {"accuracy": float(accuracy_score(y_true, y_pred))}
        for average in ("macro", "weighted"):
            result.update(_averaged_scores(y_true, y_pred, averaged, average))
        precision, recall, f1, support = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=None, zero_division=0)
        result.update({
            "labels": labels,
            "per_class_precision": precision.tolist(),
            "per_class_recall": recall.tolist(),
            "per_class_f1": f1.tolist(),
            "per_class_support": support.tolist(),
            "confusion_matrix": _confusion_matrix(y_true, y_pred, labels),
        })
        return result


def _confusion_matrix(y_true, y_pred, labels):
    # scikit-learn warns "a single label was found ... use the 'labels' parameter" even when
    # labels is passed: the warning would only be noise in the run's log.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="A single label was found", category=UserWarning)
        return confusion_matrix(y_true, y_pred, labels=labels).tolist()


def _empty_result(labels):
    # scikit-learn refuses empty inputs; an empty eval split scores 0 everywhere instead of
    # failing the run at its last step.
    zeros = [0.0] * len(labels)
    result = {"accuracy": 0.0}
    for average in ("macro", "weighted"):
        result.update({f"{name}_{average}": 0.0 for name in ("precision", "recall", "f1")})
    result.update({"labels": labels, "per_class_precision": zeros, "per_class_recall": zeros,
                   "per_class_f1": zeros, "per_class_support": [0] * len(labels),
                   "confusion_matrix": [[0] * len(labels) for _ in labels]})
    return result


def _averaged_scores(y_true, y_pred, averaged_labels, average):
    # No class to average over (average_over="all" with labels=[]): 0.0, as zero_division=0.
    if not averaged_labels:
        return {f"{name}_{average}": 0.0 for name in ("precision", "recall", "f1")}
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=averaged_labels, average=average, zero_division=0)
    return {f"precision_{average}": float(precision), f"recall_{average}": float(recall),
            f"f1_{average}": float(f1)}
