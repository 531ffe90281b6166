"""Plotly figures drawn from a run's timeline; notebooks and playground pages share them.

Importing ``labkit.viz`` is cheap: plotly and pandas load when the first figure is drawn.
"""

from labkit.viz.event_sourcing import event_log, projection_lag, stream_steps
from labkit.viz.figures import (
    compare_waterfalls,
    latency_histogram,
    outcome_counts,
    protocol_comparison,
    waterfall,
)
from labkit.viz.frames import calls_frame
from labkit.viz.mesh import ejection_timeline, health_timeline, lb_comparison, subset_traffic
from labkit.viz.messaging import fanout_receipts, message_fate, queue_depth
from labkit.viz.resilience import breaker_timeline, retry_storm
from labkit.viz.security import compatibility, gallery_matrix, handshakes
from labkit.viz.tracing import histogram_vs_exact, trace_waterfall

__all__ = [
    "breaker_timeline",
    "calls_frame",
    "compare_waterfalls",
    "compatibility",
    "ejection_timeline",
    "event_log",
    "fanout_receipts",
    "gallery_matrix",
    "handshakes",
    "health_timeline",
    "histogram_vs_exact",
    "latency_histogram",
    "lb_comparison",
    "message_fate",
    "outcome_counts",
    "projection_lag",
    "protocol_comparison",
    "queue_depth",
    "retry_storm",
    "stream_steps",
    "subset_traffic",
    "trace_waterfall",
    "waterfall",
]
