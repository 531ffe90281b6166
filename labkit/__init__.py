"""labkit: the engine of the Microservice Patterns Lab.

Run any pattern of the course and get back everything that happened::

    import labkit
    result = labkit.run("gateway", mode="concurrent", product_latency_ms=50)
    result.summary["latency_ms"]        # what the client saw
    result.timeline.to_frame()          # every request, response and fault, in order

Importing labkit is light: no plotly, pandas, streamlit, grpc or broker client is loaded
until a feature that needs it is used, and nothing connects anywhere.
"""

from labkit.core.clock import Clock, LoopClock, ManualClock, VirtualTimeLoop, run_on_fresh_loop
from labkit.core.errors import BadParameter, LabError, UnknownName
from labkit.core.faults import (
    BadPayload,
    ErrorStatus,
    FailFirst,
    FaultPlan,
    Hang,
    Latency,
    Outage,
    Reset,
)
from labkit.core.params import Param
from labkit.core.result import Result
from labkit.core.timeline import Record, Timeline
from labkit.scenarios import params_of, patterns, run

__version__ = "0.1.0"

__all__ = [
    "BadParameter",
    "BadPayload",
    "Clock",
    "ErrorStatus",
    "FailFirst",
    "FaultPlan",
    "Hang",
    "LabError",
    "Latency",
    "LoopClock",
    "ManualClock",
    "Outage",
    "Param",
    "Record",
    "Reset",
    "Result",
    "Timeline",
    "UnknownName",
    "VirtualTimeLoop",
    "__version__",
    "params_of",
    "patterns",
    "run",
    "run_on_fresh_loop",
]
