"""The 21 image-fusion metrics of the IVIF_ZOO toolkit, re-implemented on tensors (see METRICS.md).

    from metrics import compute_metrics, METRIC_NAMES
    values = compute_metrics(ir_u8, vis_u8, fused_u8)          # {name: float}
    rows, summary = evaluate_folders(ir_dir, vis_dir, fused_dir)  # folders -> per-image rows + summary
"""
from .registry import HIGHER_IS_BETTER, METRIC_GROUPS, METRIC_NAMES, MetricNameError, arrow, compute_metrics, parse_metric_list

__all__ = ["HIGHER_IS_BETTER", "METRIC_GROUPS", "METRIC_NAMES", "MetricNameError", "arrow", "compute_metrics",
           "parse_metric_list"]
