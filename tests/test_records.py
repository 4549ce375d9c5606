import json

import pytest

from saro.errors import DataError
from saro.records import JsonlWriter, format_response, read_jsonl, read_prompts, split_response


def test_writer_drops_torn_last_line_and_reports_done_ids(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text(json.dumps({"id": "a"}) + "\n" + json.dumps({"id": "b"}) + "\n" + '{"id": "c", "mess')
    with JsonlWriter(path) as writer:
        assert writer.done_ids == {"a", "b"}
        writer.write({"id": "c"})
    assert [obj["id"] for _, obj in read_jsonl(path)] == ["a", "b", "c"]


def test_bad_json_line_names_file_and_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "1", "prompt": "x", "kind": "general"}\n{"id": 2,\n')
    with pytest.raises(DataError, match=r"p.jsonl:2: invalid JSON"):
        read_prompts(path)


def test_missing_and_invalid_fields_are_named(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "1", "kind": "general"}\n')
    with pytest.raises(DataError, match=r"p.jsonl:1: field 'prompt' is missing"):
        read_prompts(path)
    path.write_text('{"id": "1", "prompt": "hi", "kind": "evil"}\n')
    with pytest.raises(DataError, match=r"p.jsonl:1: field 'kind' is 'evil'"):
        read_prompts(path)


def test_response_round_trip():
    text = format_response("1. Request: x\n5. Decision: answer.", "Hello.")
    assert split_response(text) == ("1. Request: x\n5. Decision: answer.", "Hello.")
    assert split_response("no think block") == (None, "no think block")
