"""HParams events for a run: a session per run, from its flags, and its end status.

No experiment summary is written: TensorBoard would take the one of an arbitrary
run as the domain for all runs. Without it, TensorBoard computes the experiment
from every run's session start, so every run's values show.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

from .runs import Run

__all__ = ["TIME_TAG", "hparam_value", "session_end_events", "session_start_events"]

TIME_TAG = "time"
# What TensorBoard's hparams plugin reads (its plugin name, data version and tags).
# Written from its protos alone: its metadata module imports numpy and TensorBoard's
# TensorFlow stub, 0.3 s of every process that writes summaries.
_PLUGIN_NAME = "hparams"
_PLUGIN_DATA_VERSION = 0
_SESSION_START_TAG = "_hparams_/session_start_info"
_SESSION_END_TAG = "_hparams_/session_end_info"
# The plugin's values carry no tensor: an empty float one.
_EMPTY_TENSOR = tensor_pb2.TensorProto(
    dtype=types_pb2.DT_FLOAT,
    tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim()]),
)

_STATUS = {
    "completed": api_pb2.STATUS_SUCCESS,
    "error": api_pb2.STATUS_FAILURE,
    "terminated": api_pb2.STATUS_FAILURE,
    "running": api_pb2.STATUS_RUNNING,
}


def hparam_value(value: Any) -> bool | float | str:
    """A flag value as TensorBoard accepts it: bools and numbers as they are,
    anything else (None, lists, mappings) as compact JSON or text."""
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return float(value)
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return str(value)


def _plugin_summary(tag: str, data: plugin_data_pb2.HParamsPluginData) -> summary_pb2.Summary:
    data.version = _PLUGIN_DATA_VERSION
    plugin = summary_pb2.SummaryMetadata.PluginData(
        plugin_name=_PLUGIN_NAME, content=data.SerializeToString()
    )
    summary = summary_pb2.Summary()
    summary.value.add(
        tag=tag, metadata=summary_pb2.SummaryMetadata(plugin_data=plugin), tensor=_EMPTY_TENSOR
    )
    return summary


def session_start_events(run: Run, group_name: str) -> list[event_pb2.Event]:
    """The session start of ``run``: its flags as hparams, in ``group_name``."""
    info = plugin_data_pb2.SessionStartInfo(
        group_name=group_name, start_time_secs=run.started or 0.0
    )
    flags: Mapping[str, Any] = run.flags
    for name, value in flags.items():
        converted = hparam_value(value)
        if isinstance(converted, bool):
            info.hparams[str(name)].bool_value = converted
        elif isinstance(converted, float):
            info.hparams[str(name)].number_value = converted
        else:
            info.hparams[str(name)].string_value = converted
    data = plugin_data_pb2.HParamsPluginData(session_start_info=info)
    summary = _plugin_summary(_SESSION_START_TAG, data)
    return [event_pb2.Event(wall_time=run.started or 0.0, summary=summary)]


def session_end_events(run: Run) -> list[event_pb2.Event]:
    """The session end (status) of a finished run and its ``time`` scalar (seconds
    from start to stop), when both times are known."""
    end_time = run.stopped or 0.0
    info = plugin_data_pb2.SessionEndInfo(
        status=_STATUS.get(run.status, api_pb2.STATUS_UNKNOWN), end_time_secs=end_time
    )
    data = plugin_data_pb2.HParamsPluginData(session_end_info=info)
    events = [event_pb2.Event(wall_time=end_time, summary=_plugin_summary(_SESSION_END_TAG, data))]
    if run.started is not None and run.stopped is not None:
        seconds = max(0.0, run.stopped - run.started)
        summary = summary_pb2.Summary(
            value=[summary_pb2.Summary.Value(tag=TIME_TAG, simple_value=seconds)]
        )
        events.append(event_pb2.Event(wall_time=end_time, summary=summary))
    return events
