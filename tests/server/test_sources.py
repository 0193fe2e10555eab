"""The watched sources on a real Jupyter server: the defaults it finds, and the list a
client reads, adds to and removes from (``GET``/``POST``/``DELETE sources``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jupyter_guildimg.guild.project import write_run

from helpers import png


@pytest.fixture
def project(jp_root_dir: Path, guild_home: Path) -> Path:
    """The server's root directory as a user's project: a Guild home with a run,
    PyTorch's runs/ and Lightning's lightning_logs/ with a run each, no outputs/."""
    write_run(guild_home, op="train", files={"guild.png": png()})
    for folder in ("runs", "lightning_logs"):
        (jp_root_dir / folder / "version_0").mkdir(parents=True)
        (jp_root_dir / folder / "version_0" / f"{folder}.png").write_bytes(png())
    return jp_root_dir


@pytest.fixture
def jp_server_config(project: Path) -> dict[str, object]:
    # No GuildImgApp.sources: the defaults.
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_guildimg": True}},
        "GuildImgApp": {"interval": 0.5},
    }


async def sources(jp_fetch, method: str = "GET", path: str | None = None):
    kwargs: dict[str, object] = {"method": method, "raise_error": False}
    if method == "POST":
        kwargs["body"] = json.dumps({"path": path})
    elif method == "DELETE":
        kwargs["params"] = {"path": path}
    response = await jp_fetch("guildimg", "api", "sources", **kwargs)
    return response.code, json.loads(response.body)


async def test_the_server_watches_every_conventional_source_and_says_so(
    capfd, jp_fetch, guildimg, project, guild_home
):
    code, body = await sources(jp_fetch)

    assert code == 200
    expected = [str(guild_home), str(project / "runs"), str(project / "lightning_logs")]
    assert body["sources"] == expected
    assert [(d["kind"], d["exists"]) for d in body["details"]] == [
        ("guild", True),
        ("dir", True),
        ("dir", True),
    ]
    assert [d["label"] for d in body["details"]][1:] == ["runs", "lightning_logs"]
    said = capfd.readouterr().err  # the server's log (capfd first: from its start)
    assert "no sources configured" in said and all(path in said for path in expected)
    # Every source's runs are listed.
    await jp_fetch("guildimg", "api", "refresh", method="POST", body="")
    runs = json.loads((await jp_fetch("guildimg", "api", "runs")).body)["runs"]
    assert sorted(run["image_count"] for run in runs) == [1, 1, 1]


async def test_a_relative_source_is_added_against_the_root_and_removed(jp_fetch, guildimg, project):
    (project / "exp" / "sweep" / "a").mkdir(parents=True)
    (project / "exp" / "sweep" / "a" / "x.png").write_bytes(png())

    code, body = await sources(jp_fetch, "POST", "exp/sweep")

    assert code == 200
    added = body["details"][-1]
    assert added == {
        "path": str(project / "exp" / "sweep"),
        "kind": "dir",
        "exists": True,
        "label": "exp/sweep",
    }
    code, body = await sources(jp_fetch, "DELETE", "exp/sweep")  # as it was added
    assert code == 200 and str(project / "exp" / "sweep") not in body["sources"]
    code, body = await sources(jp_fetch, "DELETE", "exp/sweep")
    assert code == 404 and "exp/sweep" in body["message"] and "not watched" in body["message"]


async def test_a_path_that_is_not_a_directory_is_a_400_naming_it(jp_fetch, guildimg, project):
    (project / "notes.txt").write_text("not runs")
    before = (await sources(jp_fetch))[1]

    for path in ("notes.txt", "no-such-folder"):
        code, body = await sources(jp_fetch, "POST", path)
        assert code == 400
        assert str(project / path) in body["message"] and "not a directory" in body["message"]
    assert (await sources(jp_fetch))[1] == before


class TestNothingToWatchYet:
    @pytest.fixture
    def jp_server_config(self, tmp_path, monkeypatch):
        # No Guild home, an empty root directory.
        monkeypatch.setenv("GUILD_HOME", str(tmp_path / "no-guild-home"))
        return {
            "ServerApp": {"jpserver_extensions": {"jupyter_guildimg": True}},
            "GuildImgApp": {"interval": 0.5},
        }

    async def test_runs_is_watched_until_it_appears(self, jp_fetch, guildimg, jp_root_dir):
        code, body = await sources(jp_fetch)
        assert code == 200 and body["sources"] == [str(jp_root_dir / "runs")]
        assert body["details"][0]["exists"] is False

        (jp_root_dir / "runs" / "first").mkdir(parents=True)
        (jp_root_dir / "runs" / "first" / "grid.png").write_bytes(png())
        await jp_fetch("guildimg", "api", "refresh", method="POST", body="")

        runs = json.loads((await jp_fetch("guildimg", "api", "runs")).body)["runs"]
        assert [run["name"] for run in runs] == ["first"]
        assert (await sources(jp_fetch))[1]["details"][0]["exists"] is True
