"""The 21 image-fusion metrics of the IVIF_ZOO toolkit, re-implemented on tensors (docs/metrics.md).

    from metrics import compute_metrics, evaluate_folders, format_summary
    values = compute_metrics(ir_u8, vis_u8, fused_u8)              # {name: float} for one triple
    rows, summary = evaluate_folders(ir_dir, vis_dir, fused_dir)   # folders -> per-image rows + summary
    print(format_summary(summary, "markdown"))
"""
from .evaluate import EvaluationSummary, evaluate_folders, final_line, format_summary
from .registry import HIGHER_IS_BETTER, METRIC_GROUPS, METRIC_NAMES, MetricNameError, arrow, compute_metrics, parse_metric_list

__all__ = ["EvaluationSummary", "HIGHER_IS_BETTER", "METRIC_GROUPS", "METRIC_NAMES", "MetricNameError", "arrow",
           "compute_metrics", "evaluate_folders", "final_line", "format_summary", "parse_metric_list"]
