"""The API key never leaves the settings file: not into event logs, the files
beside them, exports, command output, model errors or crash logs. And
redacting it never mangles ordinary words: a short key is matched only as a
whole word."""

from __future__ import annotations

import io
import os
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from convtui.backend.llm import LLMConfig, LLMFailure, classify, complete
from convtui.backend.redaction import REDACTED, Redactor
from convtui.backend.service import ConversationService
from convtui.cli import main

from .fake_llm import Error, FakeLLMServer

LONG_KEY = "sk-test-0123456789abcdef"


# -- the rule ------------------------------------------------------------------------


def test_a_short_key_is_redacted_only_as_a_whole_word() -> None:
    redact = Redactor(["x"])
    assert redact("Exception: xyz failed, 0x1f, max_x") == "Exception: xyz failed, 0x1f, max_x"
    assert redact("key x, (x) and 'x'. x") == f"key {REDACTED}, ({REDACTED}) and '{REDACTED}'. {REDACTED}"
    assert Redactor(["abc-1"])("abc-12 abc-1 xabc-1") == f"abc-12 {REDACTED} xabc-1"
    assert Redactor(["Exception"])("Exception") == REDACTED  # 9 characters: everywhere
    assert Redactor(["é"])("café é") == f"café {REDACTED}"


def test_a_long_key_is_redacted_wherever_it_occurs() -> None:
    redact = Redactor([LONG_KEY, None, "", "  "])
    assert redact(f"Bearer{LONG_KEY}x and ?key={LONG_KEY}&") == f"Bearer{REDACTED}x and ?key={REDACTED}&"
    # A key that contains another is replaced whole.
    assert Redactor(["0123456789", LONG_KEY])(LONG_KEY) == REDACTED
    assert not Redactor([None, "", " "]) and Redactor([None, "", " "])("x") == "x"


def test_json_values_are_redacted_in_every_string_but_not_the_field_names() -> None:
    redact = Redactor([LONG_KEY, "k9", "args"])
    event = {"args": {"command": f"echo {LONG_KEY}", "list": ["k9", 1, None, "k99", "args"]}, "id": 3}
    assert redact.json(event) == {"args": {"command": f"echo {REDACTED}", "list": [REDACTED, 1, None, "k99", REDACTED]}, "id": 3}
    plain = {"message": "nothing secret"}
    assert redact.json(plain) == plain


@given(
    text=st.text(alphabet="xyk9 _-.sk", max_size=60),
    cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=6),
    secrets=st.lists(st.text(alphabet="xyk9-s", min_size=1, max_size=10), min_size=1, max_size=3),
)
def test_a_stream_cut_anywhere_is_redacted_as_the_whole_text(text: str, cuts: list[int], secrets: list[str]) -> None:
    redactor = Redactor(secrets)
    stream = redactor.stream()
    pieces, start = [], 0
    for cut in sorted(cuts):
        pieces.append(stream.feed(text[start:cut]))
        start = max(start, cut)
    pieces.append(stream.feed(text[start:]))
    pieces.append(stream.flush())
    assert "".join(pieces) == redactor(text)


# -- model errors ----------------------------------------------------------------------


def test_a_model_error_keeps_ordinary_words_with_a_short_key() -> None:
    failure = classify(ValueError("Exception in x handler"), LLMConfig(model="openai/m", api_key="x"))
    assert "Exception in <redacted> handler" in str(failure)


async def test_a_provider_that_echoes_the_key_does_not_leak_it_through_the_worker() -> None:
    async with FakeLLMServer() as server:
        server.script(Error(400, message=f"Exception: the key {LONG_KEY} is not valid for x"))
        config = LLMConfig(model="openai/fake-model", api_key=LONG_KEY, base_url=server.base_url, timeout=10)
        with pytest.raises(LLMFailure) as failure:
            await complete(config, [{"role": "user", "content": "hi"}])
    assert LONG_KEY not in str(failure.value) and "Exception" in str(failure.value)
    async with FakeLLMServer() as server:
        server.script(Error(400, message="Exception: the key x is not valid"))
        config = LLMConfig(model="openai/fake-model", api_key="x", base_url=server.base_url, timeout=10)
        with pytest.raises(LLMFailure) as failure:
            await complete(config, [{"role": "user", "content": "hi"}])
    assert "Exception: the key <redacted> is not valid" in str(failure.value)


async def test_a_model_reply_that_echoes_the_key_is_redacted_streamed_or_not() -> None:
    from .fake_llm import Text

    pieces: list[str] = []
    async with FakeLLMServer() as server:
        server.script(Text(f"your key is {LONG_KEY}, and Exception x is fine"))
        config = LLMConfig(model="openai/fake-model", api_key=LONG_KEY, base_url=server.base_url, timeout=10)
        response = await complete(config, [{"role": "user", "content": "hi"}], on_text=pieces.append)
    assert response.content == f"your key is {REDACTED}, and Exception x is fine"
    assert "".join(pieces) == response.content


def test_the_model_workers_log_lines_are_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    from convtui.backend import model_worker

    monkeypatch.setattr(model_worker, "_keys", set())
    monkeypatch.setattr(model_worker, "_redact", Redactor([]))
    model_worker._learn_key("x")
    model_worker._learn_key(LONG_KEY)
    sink = io.StringIO()
    model_worker._RedactedStream(sink).write(f"Exception: x rejected {LONG_KEY}\n")
    assert sink.getvalue() == f"Exception: {REDACTED} rejected {REDACTED}\n"


# -- what reaches disk -------------------------------------------------------------------


def _everything_written(root: Path) -> bytes:
    """Every file under the data directory but the settings file."""
    return b"".join(
        path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file() and path.name != "settings.json"
    )


@pytest.mark.parametrize("key", [LONG_KEY, "x"])
async def test_the_key_is_never_written_beside_the_settings(data_dir: Path, key: str) -> None:
    service = await ConversationService.open(data_dir, user_id="alice")
    try:
        await service.set_setting("llm_api_key", key)
        message = f"Exception: my key is {key}, keep it"
        trajectory = orjson.dumps(
            [{"id": 0, "source": "user", "action": "message", "args": {"content": message}, "message": message}]
        )
        created = await service.new_conversation(
            {"initial_user_msg": message, "conversation_instructions": message, "replay_json": trajectory.decode()}
        )
        imported = await service.import_trajectory(trajectory)
        await service.append_events(created.conversation_id, [{"source": "user", "action": "message",
                                                               "args": {"content": message}}])
        exports = [await service.export_json(imported.conversation_id),
                   (await service.export_markdown(created.conversation_id)).encode()]
        # The search index (binary, tokens only) was given the redacted events.
        assert service.search_index.matching(words="redacted keep") == {created.conversation_id, imported.conversation_id}
        if len(key) > 3:
            assert service.search_index.matching(words=key) == set()
    finally:
        service.close()
    written = _everything_written(data_dir)
    assert b"Exception: my key is <redacted>, keep it" in written
    for text in (written, *exports):
        assert f" {key}," not in text.decode(errors="replace") and b"Exception" in text


async def test_a_key_set_in_the_environment_is_redacted_too(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-from-the-environment")
    service = await ConversationService.open(data_dir, user_id="alice")
    try:
        created = await service.new_conversation({"initial_user_msg": "use sk-openai-from-the-environment"})
        [event] = await service.search_events(created.conversation_id)
    finally:
        service.close()
    assert event["args"]["content"] == f"use {REDACTED}"
    assert b"sk-openai-from-the-environment" not in _everything_written(data_dir)


def test_an_internal_error_log_holds_no_key(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert main(["--data-dir", str(data_dir), "config", "set", "llm_api_key", LONG_KEY]) == 0
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path))

    async def broken(service: object, arguments: object) -> int:
        raise RuntimeError(f"a bug that shows {LONG_KEY}")

    monkeypatch.setitem(__import__("convtui.cli").cli.COMMANDS, "list", broken)
    capsys.readouterr()
    assert main(["--data-dir", str(data_dir), "list"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and LONG_KEY not in err and f"a bug that shows {REDACTED}" in err
    [log] = tmp_path.glob("convtui-error-*.log")
    assert LONG_KEY not in log.read_text() and REDACTED in log.read_text()
    assert os.stat(log).st_mode & 0o777 == 0o600
