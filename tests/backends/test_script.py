import asyncio

import pytest

from medverify.backends.registry import make_backend
from medverify.backends.script import ScriptBackend, read_script
from medverify.errors import BackendError, ConfigError


def write(tmp_path, text):
    path = tmp_path / "doctor.txt"
    path.write_text(text, encoding="utf-8")
    return path


def test_read_script_skips_comments_and_blank_lines(tmp_path):
    path = write(
        tmp_path, "# scripted doctor\nWhen did it start?\n\n  \nDIAGNOSIS: flu\\nPLAN: rest\n"
    )
    assert read_script(path) == ["When did it start?", "DIAGNOSIS: flu\nPLAN: rest"]


async def test_reply_follows_the_number_of_assistant_turns(tmp_path):
    path = write(tmp_path, "first\nsecond\nthird\n")
    backend = make_backend(f"script:{path}")
    convo = [{"role": "user", "content": "hi"}]
    assert (await backend.complete(convo)).text == "first"
    convo += [{"role": "assistant", "content": "first"}, {"role": "user", "content": "ok"}]
    assert (await backend.complete(convo)).text == "second"
    # Another conversation in parallel starts at the first line again: stateless replay.
    fresh, later = await asyncio.gather(
        backend.complete([{"role": "user", "content": "new"}]), backend.complete(convo)
    )
    assert (fresh.text, later.text) == ("first", "second")


async def test_running_out_of_lines_is_a_clear_error():
    backend = ScriptBackend(["only line"])
    convo = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "only line"},
        {"role": "user", "content": "b"},
    ]
    with pytest.raises(BackendError, match="script has 1 replies and turn 2 was asked for"):
        await backend.complete(convo)


def test_bad_script_files(tmp_path):
    with pytest.raises(ConfigError, match="script file not found"):
        make_backend(f"script:{tmp_path / 'missing.txt'}")
    with pytest.raises(ConfigError, match="no replies"):
        read_script(write(tmp_path, "# only a comment\n\n"))
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_script(binary)


def test_identity_changes_with_content(tmp_path):
    a = ScriptBackend(["x"])
    b = ScriptBackend(["y"])
    assert a.identity() != b.identity()
