"""HParams: a session per run from its flags, and its end once it has finished."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tensorboard.plugins.hparams import api_pb2, metadata

from jupyter_guildimg.engine.hparams import hparam_value
from jupyter_guildimg.engine.monitor import END_FILE, HPARAMS_FILE, RunsMonitor
from jupyter_guildimg.engine.tfevent import read_events
from jupyter_guildimg.guild.project import write_run

from helpers import run_logdir


def test_hparams_session_and_time_from_flags(home, logdir):
    flags = {"lr": 0.1, "epochs": 3, "fast": True, "name": "x", "opts": {"a": 1}, "none": None}
    run_dir = write_run(home.path, op="train", flags=flags, started=1000.0, stopped=1042.5)

    RunsMonitor(logdir, home.list_runs).run_once()

    mirror = run_logdir(logdir, run_dir)
    start = [e for e in read_events(os.path.join(mirror, HPARAMS_FILE)) if e.HasField("summary")]
    content = start[0].summary.value[0].metadata.plugin_data.content
    info = metadata.parse_session_start_info_plugin_data(content)
    assert info.group_name == f"{os.path.basename(run_dir)[:8]} train"
    assert info.hparams["lr"].number_value == 0.1
    assert info.hparams["fast"].bool_value is True
    assert info.hparams["name"].string_value == "x"
    assert info.hparams["opts"].string_value == '{"a":1}'
    assert info.hparams["none"].string_value == "null"

    end = [e for e in read_events(os.path.join(mirror, END_FILE)) if e.HasField("summary")]
    end_info = metadata.parse_session_end_info_plugin_data(
        end[0].summary.value[0].metadata.plugin_data.content
    )
    assert end_info.status == api_pb2.STATUS_SUCCESS
    assert end[1].summary.value[0].tag == "time"
    assert end[1].summary.value[0].simple_value == pytest.approx(42.5)


def test_the_end_file_waits_for_the_run_to_finish(home, logdir):
    run_dir = write_run(home.path, op="train", exit_status=None)
    Path(run_dir, ".guild", "LOCK").write_text(str(os.getpid()))
    monitor = RunsMonitor(logdir, home.list_runs)
    monitor.run_once()
    assert not os.path.exists(os.path.join(run_logdir(logdir, run_dir), END_FILE))

    os.remove(os.path.join(run_dir, ".guild", "LOCK"))
    Path(run_dir, ".guild", "attrs", "exit_status").write_text("1\n")
    monitor.run_once()
    assert os.path.exists(os.path.join(run_logdir(logdir, run_dir), END_FILE))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        (3, 3.0),
        (-1, -1.0),
        (0.25, 0.25),
        ("x", "x"),
        ("", ""),
        (None, "null"),
        ([1, "a", None], '[1,"a",null]'),
        ({"b": 1, "a": [2, 3]}, '{"a":[2,3],"b":1}'),
        ({"nested": {"y": True}}, '{"nested":{"y":true}}'),
    ],
)
def test_hparam_value(value, expected):
    converted = hparam_value(value)
    assert converted == expected
    assert type(converted) is type(expected)


def test_hparam_value_of_what_json_cannot_encode_is_its_text():
    assert hparam_value({1, 2}) == str({1, 2})


def test_sessions_are_written_as_tensorboards_own_helpers_write_them(home, guild_home):
    """Written from the protos alone (no numpy to import), what TensorBoard's hparams
    metadata module makes: the same tag, tensor, plugin name and message."""
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import plugin_data_pb2

    from jupyter_guildimg.engine.hparams import session_end_events, session_start_events

    write_run(guild_home, op="train", flags={"lr": 0.1, "name": "x", "deep": True})
    (run,) = home.list_runs()
    for event, tag in [
        (session_start_events(run, "g")[0], metadata.SESSION_START_INFO_TAG),
        (session_end_events(run)[0], metadata.SESSION_END_INFO_TAG),
    ]:
        (value,) = event.summary.value
        data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
        expected = summary_pb2.Summary()
        expected.value.add(
            tag=tag, metadata=metadata.create_summary_metadata(data), tensor=metadata.NULL_TENSOR
        )
        (wanted,) = expected.value
        assert (value.tag, value.tensor) == (wanted.tag, wanted.tensor)
        ours, theirs = value.metadata.plugin_data, wanted.metadata.plugin_data
        assert ours.plugin_name == theirs.plugin_name == "hparams"
        # The same message (a map's entries may be serialized in another order).
        assert data == plugin_data_pb2.HParamsPluginData.FromString(theirs.content)
        assert data.WhichOneof("data") in ("session_start_info", "session_end_info")
