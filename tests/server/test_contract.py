"""The REST contract (:mod:`jupyter_guildimg.rest`) holds: every answer of a real server
matches its TypedDict exactly (no key missing, none extra, every value of its type),
and ``labextension/src/api.ts`` declares the same bodies field for field."""

from __future__ import annotations

import json
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import pytest

from jupyter_guildimg import rest
from jupyter_guildimg.guild.project import write_run

from helpers import png

API_TS = Path(__file__).parents[2] / "labextension" / "src" / "api.ts"


# -- a checker of JSON values against the TypedDicts ------------------------------------


def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__required_keys__")


def check(value: Any, tp: Any, where: str = "$") -> list[str]:
    """Where ``value`` (decoded JSON) does not match the type ``tp``: a missing or an
    extra key, or a value of another type. Empty when it matches."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return []
    if tp is None or tp is type(None):
        return [] if value is None else [f"{where}: {value!r} is not null"]
    if origin is Literal:
        allowed = typing.get_args(tp)
        return [] if value in allowed else [f"{where}: {value!r} is not one of {allowed}"]
    if origin in (Union, types.UnionType):
        failures = [check(value, arg, where) for arg in typing.get_args(tp)]
        if any(not failure for failure in failures):
            return []
        return [f"{where}: {value!r} is not {tp}"]
    if origin is list:
        if not isinstance(value, list):
            return [f"{where}: {value!r} is not a list"]
        (item,) = typing.get_args(tp)
        return [p for i, v in enumerate(value) for p in check(v, item, f"{where}[{i}]")]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{where}: {value!r} is not an object"]
        key_type, item = typing.get_args(tp)
        problems = []
        for key, v in value.items():
            problems += check(key, key_type, f"{where} key {key!r}")
            problems += check(v, item, f"{where}.{key}")
        return problems
    if _is_typeddict(tp):
        if not isinstance(value, dict):
            return [f"{where}: {value!r} is not an object ({tp.__name__})"]
        hints = typing.get_type_hints(tp)
        required, optional = set(tp.__required_keys__), set(tp.__optional_keys__)
        problems = [f"{where}: no {key!r} ({tp.__name__})" for key in sorted(required - set(value))]
        extra = set(value) - required - optional
        problems += [f"{where}: extra key {key!r} ({tp.__name__})" for key in sorted(extra)]
        for key in sorted(set(value) & (required | optional)):
            problems += check(value[key], hints[key], f"{where}.{key}")
        return problems
    if tp is bool:
        return [] if isinstance(value, bool) else [f"{where}: {value!r} is not a boolean"]
    if tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return [] if ok else [f"{where}: {value!r} is not an integer"]
    if tp is float:  # JSON has numbers: 2 is a float as much as 2.0
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return [] if ok else [f"{where}: {value!r} is not a number"]
    if tp is str:
        return [] if isinstance(value, str) else [f"{where}: {value!r} is not a string"]
    raise TypeError(f"the checker does not know {tp!r} (at {where})")


def assert_matches(value: Any, tp: Any) -> None:
    problems = check(value, tp)
    assert not problems, "\n".join(problems)


class _Inner(rest._ErrorMessage):  # a required key, as in rest.Error
    count: int
    ratio: float
    flag: bool
    kind: Literal["a", "b"]
    maybe: str | None
    items: list[int]
    table: dict[str, list[str]]


def test_the_checker_finds_every_kind_of_difference():
    good = {
        "message": "m",
        "count": 1,
        "ratio": 2,
        "flag": False,
        "kind": "a",
        "maybe": None,
        "items": [1, 2],
        "table": {"x": ["y"]},
    }
    assert check(good, _Inner) == []
    assert check({**good, "maybe": "set", "ratio": 0.5}, _Inner) == []
    cases = [
        ({k: v for k, v in good.items() if k != "count"}, "no 'count'"),
        ({**good, "more": 1}, "extra key 'more'"),
        ({**good, "count": "1"}, "'1' is not an integer"),
        ({**good, "count": True}, "True is not an integer"),
        ({**good, "count": 1.5}, "1.5 is not an integer"),
        ({**good, "ratio": None}, "None is not a number"),
        ({**good, "flag": 0}, "0 is not a boolean"),
        ({**good, "kind": "c"}, "'c' is not one of"),
        ({**good, "maybe": 3}, "$.maybe: 3 is not"),
        ({**good, "items": [1, "2"]}, "$.items[1]: '2' is not an integer"),
        ({**good, "items": {}}, "is not a list"),
        ({**good, "table": {"x": [1]}}, "$.table.x[0]: 1 is not a string"),
        ([good], "is not an object"),
    ]
    for value, expected in cases:
        problems = check(value, _Inner)
        assert len(problems) == 1 and expected in problems[0], (expected, problems)
    optional = rest.Error
    assert check({"message": "m"}, optional) == []
    assert check({"message": "m", "reason": None}, optional) == []
    assert check({"reason": "r"}, optional) == ["$: no 'message' (Error)"]


# -- the server's real answers -----------------------------------------------------------


async def _json(jp_fetch: Any, route: str, **kwargs: Any) -> Any:
    response = await jp_fetch(*rest.API_PREFIX.split("/"), *route.split("/"), **kwargs)
    return json.loads(response.body)


async def test_every_answer_matches_the_contract(jp_fetch, guild_home, tmp_path):
    first, second = png((20, 10), "red"), png((30, 15), "blue")
    run_dir = write_run(
        guild_home, op="train", label="one", files={"a.png": first, "bad.png": b"not png"}
    )
    report = await _json(jp_fetch, rest.REFRESH, method="POST", body="")
    assert_matches(report, rest.RefreshReport)
    Path(run_dir, "a.png").write_bytes(second)
    report = await _json(jp_fetch, rest.REFRESH, method="POST", body="")
    assert_matches(report, rest.RefreshReport)
    assert report["written"] and report["runs_changed"] is not None

    status = await _json(jp_fetch, rest.STATUS)
    assert_matches(status, rest.Status)
    assert status["monitor"]["problems"]  # bad.png: the problems' shape is checked too

    runs = await _json(jp_fetch, rest.RUNS)
    assert_matches(runs, rest.RunsList)
    (run,) = runs["runs"]
    assert_matches(
        await _json(jp_fetch, rest.RUNS, params={rest.PARAM_Q: "train one"}), rest.RunsList
    )
    assert_matches(await _json(jp_fetch, rest.run_url(run["id"])), rest.Run)
    assert_matches(await _json(jp_fetch, rest.run_url(run["run_id"][:4])), rest.Run)

    listing = await _json(jp_fetch, rest.run_images_url(run["id"]))
    assert_matches(listing, rest.RunImages)
    (image,) = listing["images"]
    assert len(image["revisions"]) == 2

    assert_matches(await _json(jp_fetch, rest.TENSORBOARD), rest.TensorBoardState)
    assert_matches(await _json(jp_fetch, rest.SOURCES), rest.Sources)
    extra = tmp_path / "more-runs"
    extra.mkdir()
    added = await _json(
        jp_fetch, rest.SOURCES, method="POST", body=json.dumps({rest.PARAM_PATH: str(extra)})
    )
    assert_matches(added, rest.Sources)
    removed = await _json(
        jp_fetch, rest.SOURCES, method="DELETE", params={rest.PARAM_PATH: str(extra)}
    )
    assert_matches(removed, rest.Sources)
    changes = await _json(
        jp_fetch, rest.CHANGES, params={rest.PARAM_SINCE: -1, rest.PARAM_TIMEOUT: 0}
    )
    assert_matches(changes, rest.Changes)

    assert_matches(await _json(jp_fetch, rest.SELECTION), rest.Selection)
    changes_made: list[rest.SelectionChange] = [
        {"mode": "runs", "runs": [run["id"]]},
        {"mode": "filter", "filter": "train"},
        {"mode": "auto"},
    ]
    for change in changes_made:
        assert_matches(change, rest.SelectionChange)
        answer = await _json(jp_fetch, rest.SELECTION, method="PUT", body=json.dumps(change))
        assert_matches(answer, rest.Selection)
        assert answer["mode"] == change["mode"] and answer["runs"] == [run["id"]]


@pytest.mark.parametrize(
    ("method", "route", "kwargs", "code"),
    [
        ("GET", "runs/no-such-run/images", {}, 404),
        ("GET", "runs/no-such-run", {}, 404),
        ("GET", "nowhere", {}, 404),
        ("POST", rest.SOURCES, {"body": "not json"}, 400),
        ("POST", rest.TENSORBOARD, {"body": '{"restart": "yes"}'}, 400),
        ("GET", rest.CHANGES, {"params": {rest.PARAM_TIMEOUT: "nan"}}, 400),
        ("PUT", rest.SELECTION, {"body": '{"mode": "none"}'}, 400),
    ],
)
async def test_every_error_matches_the_contract(jp_fetch, method, route, kwargs, code):
    response = await jp_fetch(
        *rest.API_PREFIX.split("/"), *route.split("/"), method=method, raise_error=False, **kwargs
    )
    assert response.code == code
    assert_matches(json.loads(response.body), rest.Error)


@pytest.mark.tensorboard
async def test_tensorboard_answers_match_the_contract(jp_fetch):
    started = await _json(jp_fetch, rest.TENSORBOARD, method="POST", body="")
    assert_matches(started, rest.TensorBoardState)
    assert started["status"] == "ready" and started["started"] is not None
    stopped = await _json(jp_fetch, rest.TENSORBOARD, method="DELETE")
    assert_matches(stopped, rest.TensorBoardState)


# -- api.ts declares the same bodies ---------------------------------------------------

_INTERFACE = re.compile(r"export interface (I\w+) \{(.*?)\n\}", re.S)
_FIELD = re.compile(r"^\s*(\w+)(\??):\s*(.+?);\s*$", re.M)
_ALIAS = re.compile(r"export type (\w+) =\s*(.+?);", re.S)


def _ts_declarations() -> tuple[dict[str, dict[str, tuple[bool, str]]], dict[str, str]]:
    """api.ts's interfaces (name -> field -> (optional, type text)) and type aliases."""
    text = API_TS.read_text()
    interfaces = {
        name: {f: (opt == "?", " ".join(t.split())) for f, opt, t in _FIELD.findall(body)}
        for name, body in _INTERFACE.findall(text)
    }
    aliases = {name: " ".join(t.split()) for name, t in _ALIAS.findall(text)}
    return interfaces, aliases


def _ts_type(tp: Any) -> set[str]:
    """The TypeScript spelling of a Python type, as the alternatives of a union."""
    origin = typing.get_origin(tp)
    if tp is type(None):
        return {"null"}
    if origin is Literal:
        return {f"'{value}'" for value in typing.get_args(tp)}
    if origin in (Union, types.UnionType):
        return set().union(*(_ts_type(arg) for arg in typing.get_args(tp)))
    if origin is list:
        (item,) = typing.get_args(tp)
        (spelled,) = _ts_type(item)
        return {f"{spelled}[]"}
    if _is_typeddict(tp):
        return {f"I{tp.__name__}"}
    return {{bool: "boolean", int: "number", float: "number", str: "string"}[tp]}


def _ts_alternatives(text: str, aliases: dict[str, str]) -> set[str]:
    found: set[str] = set()
    for part in (p.strip() for p in text.split("|") if p.strip()):
        found |= _ts_alternatives(aliases[part], aliases) if part in aliases else {part}
    return found


def test_api_ts_declares_every_body_field_for_field():
    interfaces, aliases = _ts_declarations()
    for body in rest.BODIES:
        name = f"I{body.__name__}"
        assert name in interfaces, f"api.ts has no interface {name}"
        fields = interfaces[name]
        assert set(fields) == set(body.__required_keys__) | set(body.__optional_keys__), name
        hints = typing.get_type_hints(body)
        for key, (optional, ts_text) in fields.items():
            assert optional == (key in body.__optional_keys__), f"{name}.{key}: optional?"
            assert _ts_alternatives(ts_text, aliases) == _ts_type(hints[key]), f"{name}.{key}"


def _ts_object(text: str, name: str) -> dict[str, str]:
    """The string members of ``export const <name> = { A: 'a', ... }`` in api.ts."""
    match = re.search(rf"export const {name} = \{{(.*?)\n\}}", text, re.S)
    assert match, f"api.ts has no {name}"
    return dict(re.findall(r"(\w+): '([^']*)'", match.group(1)))


def test_api_ts_spells_the_routes_and_parameters_of_rest_py():
    text = API_TS.read_text()
    constants = {
        name: value
        for name, value in vars(rest).items()
        if name.isupper() and isinstance(value, str) and not name.startswith("ENV_")
    }
    for name in ("API_PREFIX", "TENSORBOARD_PREFIX"):
        assert f"export const {name} = '{constants.pop(name)}';" in text, name
    params = {k.removeprefix("PARAM_"): v for k, v in constants.items() if k.startswith("PARAM_")}
    routes = {k: v for k, v in constants.items() if not k.startswith("PARAM_")}
    assert _ts_object(text, "PARAMS") == params
    assert _ts_object(text, "ROUTES") == routes
