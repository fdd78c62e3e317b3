"""The gate in front of the service: known paths, API keys, one JSON object per error body."""

from __future__ import annotations

import json

from nasseg.serving.gate import UNAVAILABLE, error_body, is_known_path, presented_key


def test_error_bodies_become_one_json_object() -> None:
    assert json.loads(error_body(b'[{"error": "bad frame"}]', 400)) == {"error": "bad frame"}
    assert json.loads(error_body(b"Method Not Allowed", 405)) == {"error": "Method Not Allowed"}
    assert json.loads(error_body(b"", 404)) == {"error": "Not Found"}
    assert json.loads(error_body(b'{"error": "Too many requests"}', 429)) == {"error": "Too many requests"}


def test_a_503_says_why_instead_of_an_unexpected_error() -> None:
    generic = b'{"error": "An unexpected error has occurred, please check the server log."}'
    assert json.loads(error_body(generic, 503)) == {"error": UNAVAILABLE}
    assert "max_latency_ms" in UNAVAILABLE


def test_known_paths_and_static_files_only() -> None:
    assert is_known_path("/inspect") and is_known_path("/readyz") and is_known_path("/")
    assert not is_known_path("/inspect/") and not is_known_path("/no/such/path")
    assert not is_known_path("/static_content/../../../../etc/passwd")
    assert not is_known_path("/static_content/not-a-file.js")


def test_presented_key_from_either_header() -> None:
    assert presented_key([(b"Authorization", b"Bearer abc123")]) == "abc123"
    assert presented_key([(b"x-api-key", b" abc123 ")]) == "abc123"
    assert presented_key([(b"authorization", b"Basic Zm9v")]) is None
    assert presented_key([]) is None
