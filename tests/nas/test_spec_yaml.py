"""The spec document loader (``nas.spec.parse_document``, behind ``POST /api/v1/jobs`` and
``load_spec_file``): YAML aliases cannot expand a short text into a huge document, and a key
given twice is refused instead of the last one silently winning."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from nas.errors import SpecError
from nas.spec import load_spec_file, parse_document


def alias_bomb(levels: int, *, inside: str | None = None) -> str:
    """``levels`` anchors, each a list of 10 aliases of the one before: 10**levels values in
    a few hundred bytes. ``inside``: the anchors sit under that key, else at the top."""
    anchors = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    anchors += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels)]
    if inside is None:
        return "name: x\n" + "".join(f"{line}\n" for line in anchors)
    return f"name: x\n{inside}:\n" + "".join(f"  {line}\n" for line in anchors)


def refusal(text: str, **kwargs: object) -> dict[str, object]:
    with pytest.raises(SpecError) as info:
        parse_document(text, **kwargs)  # type: ignore[arg-type]
    assert len(info.value.errors) == 1, info.value.errors
    return info.value.errors[0]


def test_an_alias_bomb_is_refused_quickly_by_its_expanded_size() -> None:
    text = alias_bomb(6)  # a million values; each level more took the loader 10 times longer
    assert len(text) < 400
    started = time.process_time()
    error = refusal(text, syntax="yaml", max_bytes=1_048_576)
    assert time.process_time() - started < 1.0
    assert error["loc"] == ("<document>",)
    assert "larger than 1048576 bytes" in str(error["msg"]) and "aliases" in str(error["msg"])


@pytest.mark.timeout(60)
def test_a_recursive_anchor_is_refused_not_walked_forever() -> None:
    """A 30-byte body looped the server's check of the document forever."""
    error = refusal("name: x\nloop: &loop [*loop]\n", syntax="yaml")
    assert "nested deeper than 32 levels once its aliases are expanded" in str(error["msg"])


def test_the_expanded_size_limit_is_the_one_given() -> None:
    text = alias_bomb(3)  # 1000 values: about 5 kB written out
    assert parse_document(text, syntax="yaml", max_bytes=10_000)["a2"][9][9] == [1] * 10
    assert "larger than 2000 bytes" in str(refusal(text, syntax="yaml", max_bytes=2_000)["msg"])


def test_spec_files_go_through_the_same_limit(tmp_path: Path) -> None:
    spec = tmp_path / "bomb.yaml"
    spec.write_text(alias_bomb(6, inside="hparams"))
    with pytest.raises(SpecError, match="aliases"):
        load_spec_file(spec)


def test_ordinary_anchors_aliases_and_merges_still_work() -> None:
    text = (
        "name: x\n"
        "base: &base {name: random, seed: 1}\n"
        "controller: {<<: *base, seed: 2}\n"  # a merged key may be overridden
        "budget: &budget {trials: 5}\n"
        "other: *budget\n"
    )
    data = parse_document(text, syntax="yaml")
    assert data["controller"] == {"name": "random", "seed": 2}
    assert data["other"] == {"trials": 5}
    # a merge of a mapping that merges another: its merged key looked given twice
    chained = "name: x\ndefs:\n  a: &A {k: 1}\n  b: &B {<<: *A, k: 2}\nuse: {<<: *B}\n"
    assert parse_document(chained, syntax="yaml")["defs"]["b"] == {"k": 2}


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("name: first\nbudget: {trials: 3}\nname: second\n", "at line 1, column 1 and at line 3"),
        ("name: x\nbudget:\n  trials: 3\n  trials: 4\n", "at line 3, column 3 and at line 4"),
    ],
)
def test_a_yaml_key_given_twice_is_refused_with_its_lines(text: str, line: str) -> None:
    error = refusal(text, syntax="yaml")
    assert error["type"] == "duplicate_key"
    assert "is given twice" in str(error["msg"]) and line in str(error["msg"])


@pytest.mark.parametrize(
    ("text", "loc", "key"),
    [
        ('{"name": "first", "budget": {"trials": 3}, "name": "second"}', ("<document>",), "name"),
        ('{"name": "x", "budget": {"trials": 3, "trials": 4}}', ("budget",), "trials"),
        ('{"name": "x", "hparams": {"lr": [{"a": 1, "a": 1}]}}', ("hparams", "lr", 0), "a"),
    ],
)
def test_a_json_key_given_twice_is_refused_at_its_object(
    text: str, loc: tuple[object, ...], key: str
) -> None:
    error = refusal(text, syntax="json")
    assert error["type"] == "duplicate_key"
    assert error["loc"] == loc and f"the key {key!r} is given more than once" in str(error["msg"])


def test_a_body_of_many_small_numbers_is_not_taken_for_an_alias_bomb() -> None:
    """The size estimate counted 5 bytes for a 2-byte '0,': a JSON body of half the limit
    was refused, blaming YAML aliases it did not have."""
    numbers = [0] * 30_000
    as_json = json.dumps({"name": "x", "other": numbers})
    as_yaml = "name: x\nother: [" + ",".join(["0"] * 30_000) + "]\n"
    for text, syntax in ((as_json, "json"), (as_yaml, "yaml")):
        assert len(text) < 100_000
        assert parse_document(text, syntax=syntax, max_bytes=100_000)["other"] == numbers


def test_a_yaml_file_in_flow_style_is_read_as_yaml_and_a_json_file_as_json(
    tmp_path: Path,
) -> None:
    """``{name: x, ...}`` is YAML (flow style), not JSON: a ``.yaml`` file written so was
    refused as "not valid JSON" because it starts with ``{``. The file's name decides."""
    flow = "{name: flow, seed: 3, budget: {trials: 2}}\n"
    (tmp_path / "spec.yaml").write_text(flow)
    (tmp_path / "spec.yml").write_text(flow)
    for name in ("spec.yaml", "spec.yml"):
        assert load_spec_file(tmp_path / name) == {
            "name": "flow",
            "seed": 3,
            "budget": {"trials": 2},
        }
    (tmp_path / "spec.json").write_text("name: x\n")
    with pytest.raises(SpecError, match="is not valid JSON"):
        load_spec_file(tmp_path / "spec.json")
    (tmp_path / "spec").write_text('{"name": "x", "n": 1}')  # no suffix: by its first character
    assert load_spec_file(tmp_path / "spec") == {"name": "x", "n": 1}
    # JSON in a .yaml file is still JSON: indented with tabs, it is no YAML
    (tmp_path / "tabs.yaml").write_text(json.dumps({"name": "x", "n": [1, 2]}, indent="\t"))
    assert load_spec_file(tmp_path / "tabs.yaml") == {"name": "x", "n": [1, 2]}


@pytest.mark.parametrize(
    ("value", "read"),
    [
        ("010", 10),  # YAML 1.1 (PyYAML): 8, an octal number
        ("-007", -7),
        ("0o10", 8),
        ("0x1F", 31),
        ("1_000", 1000),
        ("1:30", "1:30"),  # YAML 1.1: 90, a base-60 number
        ("0b11", "0b11"),  # YAML 1.1: 3
        ("1__0", "1__0"),
        ("yes", "yes"),  # YAML 1.1: True, and "no", "on", "off" booleans too
        ("no", "no"),
        ("Off", "Off"),
        ("true", True),
        ("FALSE", False),
    ],
)
def test_yaml_reads_integers_and_booleans_as_yaml_1_2_and_json_do(value: str, read: object) -> None:
    """``seed: 010`` ran seed 8 and ``name: no`` was refused as not a string: PyYAML reads
    YAML 1.1, whose octal, base-60 and yes/no/on/off forms no JSON user expects."""
    data = parse_document(f"name: x\nvalue: {value}\n", syntax="yaml")
    assert data["value"] == read and type(data["value"]) is type(read)


def test_a_yaml_key_of_yes_no_on_off_is_the_string_it_shows() -> None:
    """YAML 1.1 made the key ``on:`` a boolean, refused as a key that is not a string."""
    assert parse_document("name: x\non: 1\nno: 2\n", syntax="yaml") == {
        "name": "x",
        "on": 1,
        "no": 2,
    }


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "t", "seed": ' + "1" * 5001 + "}",  # past Python's 4,300 digits: a 500
        "name: t\nseed: " + "1" * 5001,
        "name: t\nseed: 0x" + "f" * 5000,  # read, then a 500 in the size check
    ],
)
def test_an_integer_of_thousands_of_digits_is_a_422_not_a_500(text: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_document(text, source="the body")
    (error,) = info.value.errors
    assert error["loc"] == ("<document>",)
    assert error["msg"].startswith("the body: an integer written with 50")
    assert "(at most 100; a spec's integers fit in 64 bits)" in error["msg"]


def test_a_key_that_is_not_a_string_is_named_with_how_to_quote_it() -> None:
    """The 422 said "keys must be strings, got int" at the document's root (the probe of
    spec validation): which key, and how to write it, were left to guess."""
    error = refusal("name: x\nhparams:\n  1: {type: int, low: 1, high: 4}\n", syntax="yaml")
    assert error["loc"] == ("hparams",)
    assert error["msg"].startswith("keys must be strings, got int 1 (in YAML, quote a key")
