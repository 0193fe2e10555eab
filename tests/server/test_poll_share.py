"""The ``max_poll_share`` and ``max_reconcile_share`` settings reach the monitor's
pace-maker."""

from __future__ import annotations

import pytest
from traitlets import TraitError

from jupyter_guildimg.guild.project import write_run
from jupyter_guildimg.server.app import GuildImgApp

from helpers import png, wait_for


class TestMaxPollShare:
    """A server told to poll at most half a core paces its polling by that share."""

    @pytest.fixture
    def jp_server_config(self, guild_home):
        write_run(guild_home, op="train", files={"a.png": png()})
        return {
            "ServerApp": {"jpserver_extensions": {"jupyter_guildimg": True}},
            "GuildImgApp": {
                "sources": [str(guild_home)],
                "interval": 0.5,
                "force_polling": True,
                "max_poll_share": 0.5,
                "max_reconcile_share": 0.05,
                # In the server's threads, where a test can reach the pace-maker.
                "monitor_process": False,
            },
        }

    async def test_the_poll_interval_follows_the_share(self, guildimg):
        assert guildimg.runtime.settings.max_poll_share == 0.5  # what a monitor's process gets
        monitor = guildimg.runtime.monitor.service.monitor
        wait_for(lambda: monitor.passes >= 1, 30, "the first pass")
        # The pace itself (max(interval, cost / share)) is covered by the engine's
        # tests; what the server adds is the setting reaching the pace-maker.
        assert monitor._scheduler.max_poll_share == 0.5
        assert monitor._scheduler.max_reconcile_share == 0.05
        assert monitor._scheduler.polling()
        poll_interval = monitor.status()["poll_interval"]
        assert poll_interval is not None and poll_interval >= 0.5


def test_max_poll_share_is_bounded():
    assert GuildImgApp().max_poll_share == 0.1
    with pytest.raises(TraitError):
        GuildImgApp(max_poll_share=0)
    with pytest.raises(TraitError):
        GuildImgApp(max_poll_share=1.5)
    assert GuildImgApp().max_reconcile_share == 0.01
    with pytest.raises(TraitError):
        GuildImgApp(max_reconcile_share=0)
