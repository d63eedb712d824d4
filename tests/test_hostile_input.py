"""Hostile input at every door: property tests (hypothesis) over titles,
messages, filter queries, ids, settings values, imported trajectories, event
JSON and the command line.

The property, everywhere: an input is either accepted, or refused with a
ConvtuiError whose str() is exactly one non-empty line -- nothing else may
escape (no KeyError, TypeError, ValueError, pydantic ValidationError,
UnicodeError, OverflowError...) -- and a refused input changes nothing that
is stored: the listing, every file of the data directory (lock files aside)
and the settings file are byte for byte what they were. Accepted inputs are
checked too: what is read back is what was given.

Each test opens one ConversationService (in its own tmp dir) and reuses it
across its examples; the before/after comparison is per example.

Known bugs are pinned by the `xfail(strict=True)` tests at the end of each
section (each with an explicit @example reproducing it, so it fails on every
run); the passing tests of a section leave out exactly the input class those
bugs are about (lone surrogates, integers outside 64 bits, non-finite or huge
numbers) and must be widened when the bug is fixed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import io
import json
import math
import os
import string
import tempfile
import unicodedata
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import hypothesis
import orjson
import pytest
from hypothesis import HealthCheck, assume, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from convtui.backend.errors import (
    AmbiguousId,
    ConvtuiError,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from convtui.backend.events import EventLog
from convtui.backend.manager import ConversationManager
from convtui.backend.models import (
    MESSAGE_MAX_LENGTH,
    TITLE_MAX_LENGTH,
    ConversationMetadata,
    ConversationStatus,
    ConversationTrigger,
    utc_now,
)
from convtui.backend.query import parse_query
from convtui.backend.service import ConversationService
from convtui.backend.settings import SETTING_NAMES, Settings
from convtui.backend.store import ConversationFilter, display_status
from convtui.backend.trajectory import parse_trajectory
from convtui.cli import main

T = TypeVar("T")

HEX = "0123456789abcdef"
U64_MAX = 2**64 - 1


# bench/soak.py multiplies every budget (CONVTUI_HYPOTHESIS_SCALE=20: about 52,000 examples).
EXAMPLES_SCALE = float(os.environ.get("CONVTUI_HYPOTHESIS_SCALE", "1"))


def budget(examples: int) -> hsettings:
    return hsettings(
        max_examples=max(1, round(examples * EXAMPLES_SCALE)),
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
    )


# -- strategies --------------------------------------------------------------------------

# Pieces that have broken programs before: terminal escapes, bidi overrides,
# zero-width characters, line separators, markup of the UI's libraries
# (Rich, Jinja), format strings, paths, case-mapping oddities, lookalike digits.
FRAGMENTS = [
    "", " ", "  ", "\t", "\n", "\r\n", "\r", "\x0b", "\x0c", "\x1c", "\x1f", "\x00", "\x07", "\x08",
    "\x1b[31m", "\x1b[2J", "\x1b]52;c;aGk=\x07", "\x1b]8;;http://x\x1b\\", "\x7f", "\x85", "\x9b", "\xa0",
    "\u2028", "\u2029", "\u200b", "\u200d", "\u200e", "\u200f", "\u202a", "\u202e", "\u2066", "\u2069",
    "\ufeff", "\u3000", "\u180e", "\ufffd", "\uffff", "\U0010ffff", "\U000e0001",
    "[bold]", "[/bold]", "[red]x[/]", "[link=https://e.com]y[/link]", "[/]", "\\[", "[", "]",
    "{{ jinja }}", "{{", "}}", "{% if x %}", "{# c #}", "${HOME}", "$(id)", "`id`", "%s", "%(x)s", "{0}", "{}",
    "..", "../", "/", "\\", "../../etc/passwd", "~", ".", "*", "?", "'", '"', "<script>", "&amp;", ";", "|",
    "İ", "ı", "ß", "ẞ", "ﬃ", "ǅ", "e\u0301", "\u0301", "👩\u200d💻", "🏳️\u200d🌈",
    "Ω", "Ⅷ", "١٢٣", "０１２", "𝟎𝟏",
    "0", "00", "abc", "ABC", "deadbeef", "DEADBEEF", "-", "--", "-h", "--help", "--json", "-q",
    "status:running", "STATUS:Archived", "repo:", "repo:acme/app", "is:archived", "is:ALL", "is:nope",
    "trigger:cli", "trigger:SUGGESTED_TASK", "status:", ":", "::", "a:b:c",
    "true", "off", "nan", "inf", "-inf", "1e308", "1e-320", "0x10", "1_000", "-0", "+1",
]

# Every code point but surrogates (controls, private use, unassigned included).
NO_SURROGATES = st.characters(exclude_categories=("Cs",))
SURROGATES = st.characters(categories=["Cs"])


@functools.cache
def hostile_text(max_size: int, surrogates: bool = False, min_size: int = 0) -> st.SearchStrategy[str]:
    """Concatenations of FRAGMENTS, random code points and long runs, cut to
    `max_size` characters."""
    characters = st.one_of(NO_SURROGATES, SURROGATES) if surrogates else NO_SURROGATES
    runs = st.builds(
        lambda unit, count: unit * count,
        st.one_of(st.sampled_from(FRAGMENTS), st.text(characters, min_size=1, max_size=3)),
        st.integers(1, max(1, max_size)),
    )
    piece = st.one_of(
        st.sampled_from(FRAGMENTS),
        st.text(characters, max_size=12),
        st.text(string.printable, max_size=12),
        runs,
    )
    return (
        st.lists(piece, max_size=8)
        .map(lambda pieces: "".join(pieces)[:max_size])
        .filter(lambda text: len(text) >= min_size)
    )


@st.composite
def with_a_surrogate(draw: st.DrawFn, text: st.SearchStrategy[str]) -> str:
    """`text` with one lone surrogate inserted somewhere (what a JSON '\\ud800'
    decoded by Python's json, or a non-UTF-8 byte in argv, turns into)."""
    base = draw(text)
    position = draw(st.integers(0, len(base)))
    return base[:position] + draw(SURROGATES) + base[position:]


@functools.cache
def json_values(
    ints: st.SearchStrategy[int], text: st.SearchStrategy[str], max_leaves: int = 12
) -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        ints,
        st.floats(allow_nan=False, allow_infinity=False),
        text,
    )
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(json_keys(text), children, max_size=4),
        ),
        max_leaves=max_leaves,
    )


@functools.cache
def json_keys(text: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(
            ["id", "action", "observation", "source", "message", "content", "args", "extras", "cause",
             "timestamp", "hidden", "trajectory", "command", "path", "exit_code", "_private", "__class__",
             "__dict__", "model_config", "model_fields", "model_dump", "id ", "ID", ""]
        ),
        text,
    )


SHORT_TEXT = hostile_text(40)
# Integers a JSON document may hold and orjson can write back (u64 and i64).
SAFE_INTS = st.one_of(st.integers(-5, 50), st.integers(-(2**63), 2**63))
# ... and ones it cannot (a JSON number has no limit; Python ints none either).
WIDE_INTS = st.one_of(
    SAFE_INTS,
    st.sampled_from([U64_MAX, U64_MAX - 1, 2**64, 2**70, 10**30, -(2**63) - 1, -(2**64)]),
)


def ints_fit_in_64_bits(value: Any) -> bool:
    """Every int in `value` is one orjson can write (see the xfail tests)."""
    if isinstance(value, dict):
        return all(ints_fit_in_64_bits(item) for item in value.values())
    if isinstance(value, list):
        return all(ints_fit_in_64_bits(item) for item in value)
    return not isinstance(value, int) or -(2**63) <= value <= U64_MAX


def ids_below_2_63(events: list[Any]) -> bool:
    """Ids from which the next ids still fit in 64 bits (see the xfail tests)."""
    return all(
        not isinstance(event, dict) or not isinstance(event.get("id"), int) or event["id"] < 2**63
        for event in events
    )


@functools.cache
def event_fields(ints: st.SearchStrategy[int], text: st.SearchStrategy[str]) -> dict[str, st.SearchStrategy[Any]]:
    junk = json_values(ints, text, max_leaves=6)
    iso = st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.sampled_from([None, UTC])
    ).map(lambda moment: moment.isoformat())
    return {
        "id": st.one_of(
            ints,
            ints.map(str),
            st.floats(allow_nan=False, allow_infinity=False),
            st.sampled_from(["1", "-1", "x", "1.5", "", " 7 ", "1e3", "0x1"]),
            junk,
        ),
        "timestamp": st.one_of(
            iso,
            st.sampled_from(["2024-01-01", "2024-13-01T00:00:00", "", "now", "2024-01-01T00:00:00Z"]),
            text,
            junk,
        ),
        "source": st.one_of(st.sampled_from(["user", "agent", "environment", "USER", "robot", ""]), junk),
        "message": st.one_of(text, junk),
        "content": st.one_of(text, junk),
        "args": st.one_of(st.dictionaries(json_keys(text), junk, max_size=4), junk),
        "extras": st.one_of(st.dictionaries(json_keys(text), junk, max_size=4), junk),
        "cause": st.one_of(ints, ints.map(str), junk),
        "hidden": st.one_of(st.booleans(), st.sampled_from(["yes", "no", "1", "maybe"]), junk),
    }


@st.composite
def plausible_event(draw: st.DrawFn, ints: st.SearchStrategy[int], text: st.SearchStrategy[str], valid: bool = False) -> Any:
    """Something shaped like an OpenHands event, wrong in random ways: wrong
    types, missing keys, both or neither of action/observation, junk keys."""
    if not valid and draw(st.integers(0, 9)) == 0:
        return draw(json_values(ints, text, max_leaves=6))  # not even a dict
    event: dict[str, Any] = {}
    kind_name = st.one_of(st.sampled_from(["message", "run", "read", "edit", "think", "finish", "null", "recall"]), text)
    kind = "action" if valid and draw(st.booleans()) else ("observation" if valid else draw(
        st.sampled_from(["action", "observation", "both", "neither"])
    ))
    if kind in ("action", "both"):
        event["action"] = draw(kind_name if valid else st.one_of(kind_name, json_values(ints, text, 3)))
    if kind in ("observation", "both"):
        event["observation"] = draw(kind_name if valid else st.one_of(kind_name, json_values(ints, text, 3)))
    fields = event_fields(ints, text)
    for name, values in fields.items():
        if name == "id":
            continue  # the list decides ids
        if draw(st.integers(0, 2)) == 0:
            if valid and name in ("timestamp", "source", "hidden", "cause"):
                continue
            event[name] = draw(values)
    if valid:
        for name in ("args", "extras"):
            if name in event and not isinstance(event[name], dict):
                del event[name]
        for name in ("message", "content"):
            if name in event and not isinstance(event[name], str):
                del event[name]
    extra = draw(st.dictionaries(json_keys(text), json_values(ints, text, 4), max_size=3))
    for key, value in extra.items():
        if valid and key in fields | {"action": 0, "observation": 0}:
            continue
        event.setdefault(key, value)
    return event


@st.composite
def plausible_event_list(draw: st.DrawFn, ints: st.SearchStrategy[int], text: st.SearchStrategy[str]) -> list[Any]:
    valid = draw(st.booleans())
    events = draw(st.lists(plausible_event(ints, text, valid=valid), max_size=6))
    id_style = draw(st.sampled_from(["none", "increasing", "random", "duplicate", "decreasing", "huge"]))
    next_id = draw(st.one_of(st.integers(0, 5), ints if id_style == "huge" else st.integers(0, 100)))
    for position, event in enumerate(events):
        if not isinstance(event, dict) or (id_style == "none") or (valid and draw(st.integers(0, 3)) == 0):
            continue
        if id_style in ("increasing", "huge"):
            event["id"] = next_id
            next_id += draw(st.integers(1, 3))
        elif id_style == "duplicate":
            event["id"] = next_id
        elif id_style == "decreasing":
            event["id"] = next_id - position
        else:
            event["id"] = draw(event_fields(ints, text)["id"])
    return events


def encode(value: Any, as_text: bool, ensure_ascii: bool, wrap: bool) -> bytes | str:
    """JSON as a person's file would hold it (Python's json: any int size)."""
    document = {"trajectory": value} if wrap else value
    encoded = json.dumps(document, ensure_ascii=ensure_ascii)
    return encoded if as_text else encoded.encode("utf-8", errors="surrogatepass")


def trajectories(ints: st.SearchStrategy[int], text: st.SearchStrategy[str]) -> st.SearchStrategy[bytes | str]:
    return st.builds(
        encode,
        plausible_event_list(ints, text),
        as_text=st.booleans(),
        ensure_ascii=st.booleans(),
        wrap=st.integers(0, 4).map(lambda n: n == 0),
    )


# -- the harness -------------------------------------------------------------------------


def check_refusal(error: ConvtuiError) -> None:
    message = str(error)
    assert message.strip(), f"{type(error).__name__} with an empty message"
    assert "\n" not in message, f"{type(error).__name__} message is several lines: {message!r}"
    assert len(message.splitlines()) == 1, f"{type(error).__name__} message breaks lines: {message!r}"


def attempt(action: Callable[[], T]) -> tuple[bool, T | ConvtuiError]:
    """(True, result) or (False, the ConvtuiError). Any other exception
    propagates: it is the bug the property is about."""
    try:
        result = action()
    except ConvtuiError as error:
        check_refusal(error)
        hypothesis.event(f"refused ({type(error).__name__})")
        return False, error
    hypothesis.event("accepted")
    return True, result


class Env:
    """One service (one data directory, one event loop) for a whole test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runner = asyncio.Runner()
        self.service: ConversationService = self.run(ConversationService.open(root, user_id="alice"))
        self.manager = ConversationManager(self.service)
        # Conversations a test's fixture made for it.
        self.mine = self.theirs = self.target = ""
        self.seeded: tuple[str, ...] = ()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coroutine)

    def attempt(self, make: Callable[[], Coroutine[Any, Any, T]]) -> tuple[bool, T | ConvtuiError]:
        return attempt(lambda: self.run(make()))

    def new(self, **fields: Any) -> str:
        user_id = fields.pop("user_id", None)
        return self.run(self.service.new_conversation(fields, user_id=user_id)).conversation_id

    def ids(self) -> list[str]:
        self.service.store.refresh()
        return self.service.store.all_ids()

    def documents(self) -> list[dict[str, Any]]:
        self.service.store.refresh()
        return list(self.service.store.iter_documents())

    def snapshot(self) -> tuple[str, dict[str, bytes | None]]:
        """The listing as JSON plus every file and directory under the data
        directory (lock files left out: taking a lock creates one)."""
        listing = self.run(self.service.search(archived=None, max_age=timedelta.max, limit=100))
        files: dict[str, bytes | None] = {}
        for path in sorted(self.root.rglob("*")):
            if path.name.endswith(".lock"):
                continue
            relative = str(path.relative_to(self.root))
            files[relative] = None if path.is_dir() else path.read_bytes()
        return listing.model_dump_json(), files

    def close(self) -> None:
        self.service.close()
        self.runner.close()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    opened = Env(tmp_path / "data")
    yield opened
    opened.close()


def assert_unchanged(before: tuple[str, dict[str, bytes | None]], after: tuple[str, dict[str, bytes | None]]) -> None:
    assert after[0] == before[0], "a refused input changed the listing"
    old, new = before[1], after[1]
    changed = sorted(set(old) ^ set(new) | {name for name in old if name in new and old[name] != new[name]})
    assert not changed, f"a refused input changed files: {changed}"


# -- titles --------------------------------------------------------------------------------


def has_surrogate(text: str) -> bool:
    """Lone surrogates cannot be stored as UTF-8: refusing them is fine (the
    xfail tests only require that they are not a crash)."""
    return any(0xD800 <= ord(character) <= 0xDFFF for character in text)


def title_is_valid(title: str) -> bool:
    """SPEC: 1-200 characters after stripping, no control characters (C0, DEL,
    C1, line and paragraph separators)."""
    stripped = title.strip()
    return 0 < len(stripped) <= TITLE_MAX_LENGTH and not any(
        unicodedata.category(character) in ("Cc", "Zl", "Zp") for character in stripped
    )


@pytest.fixture
def rename_env(env: Env) -> Env:
    env.mine = env.new(initial_user_msg="mine")
    env.theirs = env.new(initial_user_msg="theirs", user_id="bob")
    return env


def check_rename(env: Env, title: str, owner: str) -> None:
    target = env.mine if owner == "mine" else env.theirs
    before = env.snapshot()
    accepted, result = env.attempt(lambda: env.service.rename(target, title))
    if accepted:
        assert owner == "mine" and title_is_valid(title), f"accepted {title!r} for {owner}"
        assert result.title == title.strip()
        assert env.run(env.service.get(target)).title == title.strip()
        assert env.run(env.service.get(target[:6])).title == title.strip()
    else:
        assert_unchanged(before, env.snapshot())
        if title_is_valid(title) and not has_surrogate(title):
            assert owner == "theirs" and isinstance(result, PermissionDenied), f"refused {title!r}: {result}"
        else:
            assert isinstance(result, InvalidInput), f"{title!r} refused with {type(result).__name__}"


def without_controls(text: str) -> str:
    return "".join(c for c in text if unicodedata.category(c) not in ("Cc", "Zl", "Zp"))


# Mostly plausible titles (everything but control characters, padded with
# whitespace that strip() removes), so acceptance is checked as much as refusal.
PLAUSIBLE_TITLES = st.builds(
    lambda pad, core, pad2: pad + core + pad2,
    st.sampled_from(["", " ", "\t", "\u3000", "\n", "\x85\x1c", "\u2028 "]),
    hostile_text(220).map(without_controls),
    st.sampled_from(["", " ", "\r\n", "\u2029", "\x0b\x0c"]),
)


@budget(300)
@given(
    title=st.one_of(
        hostile_text(300),
        PLAUSIBLE_TITLES,
        st.builds(lambda pad, core, pad2: pad + core + pad2, st.sampled_from(["", " ", "\t", "\u3000", "\n"]),
                  st.text(NO_SURROGATES, min_size=195, max_size=205), st.sampled_from(["", " ", "\x85", "\u2029"])),
    ),
    owner=st.sampled_from(["mine", "mine", "mine", "theirs"]),
)
@example(title="  Ship it \u2029", owner="mine")
@example(title="x" * TITLE_MAX_LENGTH, owner="mine")
@example(title="x" * (TITLE_MAX_LENGTH + 1), owner="mine")
@example(title="[bold]{{ x }}\u202e", owner="mine")
@example(title="ok", owner="theirs")
def test_rename_accepts_or_refuses_cleanly(rename_env: Env, title: str, owner: str) -> None:
    check_rename(rename_env, title, owner)


@budget(20)
@given(title=with_a_surrogate(hostile_text(100, min_size=1)), owner=st.just("mine"))
@example(title="a\ud800b", owner="mine")
def test_rename_with_lone_surrogates(rename_env: Env, title: str, owner: str) -> None:
    check_rename(rename_env, title, owner)


# -- messages ------------------------------------------------------------------------------

MESSAGES = st.one_of(hostile_text(5000), hostile_text(60))


def message_is_valid(text: str) -> bool:
    return len(text) <= MESSAGE_MAX_LENGTH and "\x00" not in text


def check_new_conversation(env: Env, message: str, as_model_field: str) -> None:
    request = {as_model_field: message, "trigger": "cli"}
    before = env.snapshot()
    accepted, result = env.attempt(lambda: env.service.new_conversation(request))
    if not accepted:
        assert_unchanged(before, env.snapshot())
        assert not message_is_valid(message) or has_surrogate(message), f"refused {message[:80]!r}: {result}"
        assert isinstance(result, InvalidInput)
        return
    assert message_is_valid(message), f"accepted {message[:80]!r}"
    conversation_id = result.conversation_id
    events = env.run(env.service.search_events(conversation_id))
    if as_model_field == "initial_user_msg" and message:
        [event] = events
        assert (event["source"], event["action"], event["message"], event["args"]["content"]) == (
            "user", "message", message, message,
        )
        # A fresh reader sees the same event on disk.
        assert EventLog(env.service.data_dir.conversation(conversation_id)).search_events() == events
    else:
        assert events == []
    # Keep the store small: each example starts from the same few conversations.
    assert env.run(env.service.delete(conversation_id)) is True


@budget(150)
@given(message=MESSAGES, field=st.sampled_from(["initial_user_msg", "initial_user_msg", "conversation_instructions"]))
@example(message="\x00", field="initial_user_msg")
@example(message="x" * (MESSAGE_MAX_LENGTH + 1), field="initial_user_msg")
@example(message="x" * MESSAGE_MAX_LENGTH, field="initial_user_msg")
@example(message="   ", field="initial_user_msg")
def test_new_conversation_message_accepted_or_refused_cleanly(env: Env, message: str, field: str) -> None:
    check_new_conversation(env, message, field)


def check_send_message(env: Env, text: str) -> None:
    target = env.target
    before = env.snapshot()
    accepted, result = env.attempt(lambda: env.manager.send_message(target[:7], text))
    if not accepted:
        assert_unchanged(before, env.snapshot())
        assert not message_is_valid(text) or not text.strip() or has_surrogate(text), f"refused {text[:80]!r}: {result}"
        assert isinstance(result, InvalidInput)
        return
    assert message_is_valid(text) and text.strip(), f"accepted {text[:80]!r}"
    assert (result["source"], result["action"], result["message"], result["args"]["content"]) == (
        "user", "message", text, text,
    )
    log = EventLog(env.service.data_dir.conversation(target))
    assert log.search_events(start_id=result["id"]) == [result]


@pytest.fixture
def send_env(env: Env) -> Env:
    env.target = env.new(initial_user_msg="hello")
    return env


@budget(200)
@given(text=MESSAGES)
@example(text="")
@example(text=" \t\u3000\n")
@example(text="a\x00b")
@example(text="x" * (MESSAGE_MAX_LENGTH + 1))
@example(text="{{ config }} [bold]\x1b[31m\u202e")
def test_send_message_accepted_or_refused_cleanly(send_env: Env, text: str) -> None:
    check_send_message(send_env, text)


@budget(20)
@given(message=with_a_surrogate(hostile_text(200)), field=st.just("initial_user_msg"))
@example(message="hi \udc80", field="initial_user_msg")
def test_new_conversation_with_lone_surrogates(env: Env, message: str, field: str) -> None:
    check_new_conversation(env, message, field)


@budget(20)
@given(text=with_a_surrogate(hostile_text(200, min_size=1)))
@example(text="hi \udc80")
def test_send_message_with_lone_surrogates(send_env: Env, text: str) -> None:
    check_send_message(send_env, text)


# -- filter queries ------------------------------------------------------------------------


@pytest.fixture
def query_env(env: Env) -> Env:
    """A few conversations that differ in every field a query looks at."""
    service = env.service
    fix = env.new(initial_user_msg="x", repository="acme/app", selected_branch="main")
    env.run(service.rename(fix, "Fix the flaky build [bold]"))
    env.new(repository="Acme/Other", selected_branch="feature/ünï", trigger="cli")
    archived = env.new(repository="https://git.example.com/a/b.git")
    env.run(service.rename(archived, "İstanbul ß straße ﬃ"))
    env.run(service.archive(archived))
    failed = env.new(trigger="suggested_task")
    env.run(service.update_metadata(failed, status="ERROR", title="{{ jinja }} 👩\u200d💻 \u202eevil"))
    env.new(trigger="replay")
    return env


def query_tokens(ids: list[str]) -> st.SearchStrategy[str]:
    field = st.builds(
        lambda name, value: f"{name}:{value}",
        st.sampled_from(["status", "STATUS", "repo", "Repo", "trigger", "is", "IS", "title", "id"]),
        st.one_of(
            st.sampled_from(
                [s.value for s in ConversationStatus] + [s.name.lower() for s in ConversationStatus]
                + [t.value for t in ConversationTrigger] + [t.name for t in ConversationTrigger]
                + ["archived", "all", "any", "acme/app", "Acme/Other", "", "running:x"]
            ),
            SHORT_TEXT,
        ),
    )
    word = st.one_of(
        st.sampled_from(
            ["fix", "FLAKY", "acme", "main", "ünï", "İstanbul", "i̇stanbul", "STRASSE", "ß", "ﬃ", "jinja", "{{",
             "[bold]", "💻", "evil"]
        ),
        st.sampled_from(ids).flatmap(lambda i: st.integers(1, 32).map(lambda n: i[:n])),
        st.sampled_from(ids).map(str.upper),
        st.text(HEX, min_size=1, max_size=4),
        SHORT_TEXT,
    )
    return st.one_of(field, word, st.sampled_from(FRAGMENTS))


def query_text(ids: list[str]) -> st.SearchStrategy[str]:
    separators = st.sampled_from([" ", "  ", "\t", "\n", "\u3000", "\x1c", "\u2028", ""])
    return st.lists(st.tuples(query_tokens(ids), separators), max_size=6).map(
        lambda parts: "".join(token + separator for token, separator in parts)
    )


def page_tokens() -> st.SearchStrategy[str]:
    """Well-formed page tokens (base64 of a JSON list) around junk keys."""
    return st.builds(
        lambda value: base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("="),
        st.one_of(st.tuples(SHORT_TEXT, SHORT_TEXT).map(list), json_values(SAFE_INTS, SHORT_TEXT, 4)),
    )


def matches(document: dict[str, Any], query: ConversationFilter) -> bool:
    """What ConversationFilter documents: each word of the text is found
    within one field (title, repository, branch) or starts the id; a word
    never spans two fields, even one holding the NUL the store joins them
    with (test_a_query_word_matches_within_one_field)."""
    if query.archived is not None and bool(document.get("archived")) is not query.archived:
        return False
    if query.repository is not None and document.get("selected_repository") != query.repository:
        return False
    if query.trigger is not None and document.get("trigger") != query.trigger:
        return False
    if query.status is not None and display_status(document) != query.status:
        return False
    fields = [(document.get(name) or "").lower() for name in ("title", "selected_repository", "selected_branch")]
    for word in (query.text or "").lower().split():
        by_id = set(word) <= set(HEX) and document["conversation_id"].startswith(word)
        if not any(word in field for field in fields) and not by_id:
            return False
    return True


@budget(300)
@given(data=st.data())
@example(data=None)
def test_filter_queries_never_fail_and_never_write(query_env: Env, data: st.DataObject | None) -> None:
    env = query_env
    ids = env.ids()
    text = data.draw(query_text(ids), label="query") if data is not None else "status:running is:all \x00 repo:"
    before = env.snapshot()
    documents = {document["conversation_id"]: document for document in env.documents()}

    # The UI's filter box: parse, then list every matching id.
    accepted, parsed = attempt(lambda: parse_query(text))
    if accepted:
        for problem in parsed.problems:
            assert problem.strip() and len(problem.splitlines()) == 1, problem
        for sort in ("updated", "created", "title", "status", "cost"):
            listed_ok, listed = env.attempt(lambda sort=sort: env.service.list_ids(parsed.filter, sort))
            if listed_ok:
                assert len(listed) == len(set(listed))
                expected = {i for i, document in documents.items() if matches(document, parsed.filter)}
                assert set(listed) == expected, (parsed.filter, sort)

    # The CLI's --query: free text, every word must match.
    archived = data.draw(st.sampled_from([None, False, True]), label="archived") if data is not None else None
    searched_ok, page = env.attempt(
        lambda: env.service.search(query=text, archived=archived, max_age=timedelta.max, limit=100)
    )
    if searched_ok:
        free_text = ConversationFilter(text=text or None, archived=archived)
        expected = {i for i, document in documents.items() if matches(document, free_text)}
        assert {info.conversation_id for info in page.results} == expected
        assert page.next_page_id is None

    # The other text the list takes: a page token, a status, a trigger, a repository.
    if data is not None:
        page_id = data.draw(st.one_of(st.none(), SHORT_TEXT, page_tokens()), label="page_id")
        status = data.draw(
            st.one_of(st.none(), st.sampled_from(["running", "ARCHIVED", " Stopped "]), SHORT_TEXT), label="status"
        )
        trigger = data.draw(
            st.one_of(st.none(), st.sampled_from(["cli", "GUI", "suggested_task"]), SHORT_TEXT), label="trigger"
        )
        repository = data.draw(st.one_of(st.none(), st.sampled_from(["acme/app"]), SHORT_TEXT), label="repository")
        limit = data.draw(st.sampled_from([1, 2, 20, 100]), label="limit")
        env.attempt(
            lambda: env.service.search(
                page_id=page_id or None, limit=limit, selected_repository=repository,
                conversation_trigger=trigger, status=status, query=text, archived=None, max_age=None,
            )
        )

    assert_unchanged(before, env.snapshot())


@budget(20)
@given(word=st.sampled_from(["[bold]\x00acme", "[BOLD]\x00ACME/APP\x00MAIN", "app\x00ma"]))
@example(word="[bold]\x00acme")
def test_a_query_word_matches_within_one_field(query_env: Env, word: str) -> None:
    def documented(document: dict[str, Any], text: str) -> bool:
        fields = [document.get(name) or "" for name in ("title", "selected_repository", "selected_branch")]
        return all(
            any(w in field.lower() for field in fields) or document["conversation_id"].startswith(w)
            for w in text.lower().split()
        )

    found = query_env.run(query_env.service.search(query=word, archived=None, max_age=timedelta.max, limit=100))
    expected = {d["conversation_id"] for d in query_env.documents() if documented(d, word)}
    assert {info.conversation_id for info in found.results} == expected


# -- ids and id prefixes -------------------------------------------------------------------

SHARED = "ab"  # two crafted ids share this prefix, so prefixes can be ambiguous
CRAFTED = [SHARED + "c" * 29 + "1", SHARED + "c" * 29 + "2"]


def insert_crafted(env: Env, conversation_id: str) -> None:
    now = utc_now()
    env.service.store.insert(
        ConversationMetadata(
            conversation_id=conversation_id, title="crafted", user_id="alice", created_at=now, last_updated_at=now
        ).to_document()
    )


@pytest.fixture
def id_env(env: Env) -> Env:
    for conversation_id in CRAFTED:
        insert_crafted(env, conversation_id)
    for _ in range(3):
        env.new(initial_user_msg="hello")
    return env


def id_inputs(ids: list[str]) -> st.SearchStrategy[str]:
    decorations = st.tuples(
        st.sampled_from(["", " ", "\t", "\u3000", "\n", "\x00", "./", "../", "/", "\u202e"]),
        st.sampled_from(["", " ", "\n", "\x00", "/..", "/../..", "/events.jsonl", "\\..", "\u200b", "*", "%00"]),
    )
    real = st.builds(
        lambda conversation_id, cut, upper, around: around[0]
        + (conversation_id[:cut].upper() if upper else conversation_id[:cut])
        + around[1],
        st.sampled_from(ids),
        st.integers(1, 32),
        st.booleans(),
        decorations,
    )
    clean = st.builds(
        lambda conversation_id, cut, upper, pad: pad
        + (conversation_id[:cut].upper() if upper else conversation_id[:cut])
        + pad,
        st.sampled_from(ids),
        st.integers(1, 32),
        st.booleans(),
        st.sampled_from(["", "", " ", "\t", "\u3000"]),
    )
    return st.one_of(
        real,
        clean,
        clean,
        st.text(HEX + "ABCDEF", min_size=0, max_size=40),
        st.sampled_from([SHARED, SHARED + "c", CRAFTED[0][:31], "a", "", " ", "..", "/", "../..", "~", "*", "0" * 33,
                         "0x" + "0" * 30, "ａｂ", "𝟎", "İ", "ǅ", "\x00", CRAFTED[0] + "0", "-1"]),
        st.integers(33, 20_000).map(lambda n: "a" * n),
        hostile_text(300),
    )


def expected_resolution(raw: str, ids: list[str]) -> type[ConvtuiError] | str:
    candidate = raw.strip().lower()
    if not candidate or len(candidate) > 32 or not set(candidate) <= set(HEX):
        return InvalidInput
    found = [i for i in ids if i.startswith(candidate)]
    if not found:
        return NotFound
    if len(found) > 1:
        return AmbiguousId
    return found[0]


OPERATIONS = ["get", "resolve", "delete", "rename", "send", "events", "archive", "export"]


@budget(300)
@given(data=st.data(), operation=st.sampled_from(OPERATIONS))
@example(data=None, operation="delete")
def test_ids_and_prefixes_resolve_or_are_refused_cleanly(id_env: Env, data: st.DataObject | None, operation: str) -> None:
    env = id_env
    service = env.service
    ids = env.ids()
    raw = data.draw(id_inputs(ids), label="id") if data is not None else "../" + ids[0]
    expected = expected_resolution(raw, ids)
    actions: dict[str, Callable[[], Coroutine[Any, Any, Any]]] = {
        "get": lambda: service.get(raw),
        "resolve": lambda: service.resolve(raw),
        "delete": lambda: service.delete(raw),
        "rename": lambda: service.rename(raw, "renamed"),
        "send": lambda: env.manager.send_message(raw, "hello"),
        "events": lambda: service.search_events(raw),
        "archive": lambda: service.set_archived(raw, True),
        "export": lambda: service.export_markdown(raw),
    }
    before = env.snapshot()
    accepted, result = env.attempt(actions[operation])
    if not accepted:
        assert_unchanged(before, env.snapshot())
        assert isinstance(expected, type) and isinstance(result, expected), (raw, expected, result)
        return
    if operation == "delete" and expected is NotFound:
        assert result is False
        assert_unchanged(before, env.snapshot())
        return
    assert isinstance(expected, str), f"{raw!r} was accepted by {operation}; expected {expected.__name__}"
    full_id = expected
    if operation == "get":
        assert result.conversation_id == full_id
    elif operation == "resolve":
        assert result == full_id
    elif operation == "rename":
        assert result.conversation_id == full_id and result.title == "renamed"
    elif operation == "archive":
        assert result.conversation_id == full_id and result.archived
        env.run(service.set_archived(full_id, False))
    elif operation == "delete":
        assert result is True
        assert full_id not in env.ids()
        assert not service.data_dir.conversations.joinpath(full_id).exists()
        assert set(env.ids()) == set(ids) - {full_id}, "delete removed another conversation"
        # Put the pool back as it was (a crafted id, or another real one).
        if full_id in CRAFTED:
            insert_crafted(env, full_id)
        else:
            env.new(initial_user_msg="hello")


# -- settings values -----------------------------------------------------------------------

FLOAT_SETTINGS = [name for name, field in Settings.model_fields.items() if field.annotation in (float, float | None)]


def number_strings() -> st.SearchStrategy[str]:
    numbers = st.one_of(
        st.integers(-(10**6), 10**6),
        st.integers(),
        st.floats(),
        st.sampled_from([0, 1, 0.5, 1e-320, 86_400, 86_401, 3_600, 10_000, 10_001, 1_000, 1_001, 739_000]),
    )
    def spell(number: float, style: str, pad: str) -> str:
        try:
            text = repr(number) if style == "repr" else f"{number:{style}}"
        except (OverflowError, ValueError):
            text = repr(number)
        return pad + text + pad

    return st.builds(
        spell,
        numbers,
        st.sampled_from(["repr", "", "e", "g", ".3f", "_"]),
        st.sampled_from(["", " ", "\t", "\u3000", "\n"]),
    )


def setting_values(text: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        text,
        number_strings(),
        st.sampled_from(
            ["", " ", "on", "OFF", "Yes", "no", "true", "0", "1", "2", "-1", "maybe", "http://localhost:4000",
             "https://api.example.com/v1", "ftp://x", "http://a b", "openai/gpt-4o", "sk-abc\x00def", "sk abc",
             "nan", "NaN", "-0", "1_000", "0x10", "١٢", "５", "1e3", "10.0", "1,5", "None", "null", "[]", "{}"]
        ),
        st.builds(lambda scheme, rest: scheme + rest, st.sampled_from(["http://", "https://", "HTTP://"]), SHORT_TEXT),
    )


def non_finite_or_huge(raw: str) -> bool:
    """A value that reads as inf/nan, or so many days no datetime can reach
    back that far (see the xfail tests)."""
    try:
        number = float(raw.strip())
    except ValueError:
        return False
    return not math.isfinite(number) or abs(number) > 700_000


def check_setting(env: Env, name: str, raw: str) -> None:
    store = env.service.settings_store
    path = env.service.data_dir.settings
    before = path.read_bytes() if path.exists() else None
    before_loaded = store.load_file()
    accepted, result = attempt(lambda: store.set(name, raw))
    if not accepted:
        assert (path.read_bytes() if path.exists() else None) == before, f"refused {name}={raw!r} changed the file"
        assert store.load_file() == before_loaded
        assert isinstance(result, InvalidInput)
        return
    # What was accepted is what a later read gives, and the program still works.
    assert store.load_file() == result, f"{name}={raw!r} does not read back as stored"
    assert env.run(env.service.load_settings()) == result
    env.run(env.service.search())  # the default max age comes from the settings
    assert path.stat().st_mode & 0o077 == 0


@budget(300)
@given(name=st.sampled_from(SETTING_NAMES), raw=setting_values(hostile_text(120)))
@example(name="llm_api_key", raw="  sk-secret  ")
@example(name="llm_base_url", raw="javascript:alert(1)")
@example(name="max_iterations", raw="1e3")
@example(name="conversation_max_age_days", raw="700000")
@example(name="confirmation_mode", raw="\x00")
def test_setting_values_accepted_or_refused_cleanly(env: Env, name: str, raw: str) -> None:
    assume(not non_finite_or_huge(raw))
    check_setting(env, name, raw)


@budget(20)
@given(
    name=st.sampled_from(FLOAT_SETTINGS),
    raw=st.sampled_from(["inf", "Infinity", "+inf", "1e309", " INF ", "nan", "-inf"]),
)
@example(name="conversation_max_age_days", raw="inf")
def test_setting_non_finite_numbers(env: Env, name: str, raw: str) -> None:
    check_setting(env, name, raw)


@budget(20)
@given(raw=st.one_of(st.integers(740_000, 10**300).map(str), st.floats(740_000, 1e300).map(repr)))
@example(raw="1000000")
def test_huge_conversation_max_age_days(env: Env, raw: str) -> None:
    check_setting(env, "conversation_max_age_days", raw)


@budget(20)
@given(
    name=st.sampled_from(["llm_model", "llm_api_key", "llm_base_url"]),
    raw=with_a_surrogate(st.sampled_from(["openai/gpt-4o", "sk-abcdef", "https://api.example.com"])),
)
@example(name="llm_model", raw="openai/\udcff")
def test_setting_values_with_lone_surrogates(env: Env, name: str, raw: str) -> None:
    check_setting(env, name, raw)


# -- imported trajectories -----------------------------------------------------------------


def check_import(env: Env, raw: bytes | str) -> None:
    before = env.snapshot()
    accepted, result = env.attempt(lambda: env.service.import_trajectory(raw))
    if not accepted:
        assert_unchanged(before, env.snapshot())
        assert isinstance(result, InvalidInput), type(result)
        return
    conversation_id = result.conversation_id
    expected = parse_trajectory(raw)
    stored = env.run(env.service.search_events(conversation_id))
    assert [event["id"] for event in stored] == [event["id"] for event in expected]
    for kept, given_event in zip(stored, expected):
        for key, value in given_event.items():
            if key != "timestamp" or value:
                assert kept[key] == value, key
        assert kept["timestamp"]
    info = env.run(env.service.get(conversation_id))
    assert info.trigger is ConversationTrigger.REPLAY
    # The conversation is usable: a person can write to it afterwards.
    sent = env.run(env.manager.send_message(conversation_id, "and now?"))
    assert sent["id"] == (stored[-1]["id"] + 1 if stored else 0)
    assert env.run(env.service.delete(conversation_id)) is True


TRAJECTORY_BYTES = trajectories(SAFE_INTS, SHORT_TEXT).map(lambda t: t if isinstance(t, bytes) else t.encode())


@budget(150)
@given(
    raw=st.one_of(
        st.binary(max_size=300),
        st.builds(
            lambda document, cut, junk: document[:cut] + junk + document[cut:],
            TRAJECTORY_BYTES,
            st.integers(0, 200),
            st.binary(max_size=3),
        ),
        st.builds(lambda document, cut: document[:cut], TRAJECTORY_BYTES, st.integers(0, 200)),
    )
)
@example(raw=b"")
@example(raw=b"\xff\xfe[\x00]")
@example(raw=b'[{"action": "message", "id": 1e999}]')
@example(raw=b"[" * 5000 + b"]" * 5000)
@example(raw=b'\xef\xbb\xbf[]')
def test_import_arbitrary_bytes(env: Env, raw: bytes) -> None:
    check_import(env, raw)


@budget(150)
@given(
    value=json_values(WIDE_INTS, SHORT_TEXT, max_leaves=20),
    as_text=st.booleans(),
    ensure_ascii=st.booleans(),
    wrap=st.booleans(),
)
@example(value=[], as_text=False, ensure_ascii=True, wrap=True)
@example(value={"trajectory": {"trajectory": []}}, as_text=True, ensure_ascii=True, wrap=False)
@example(value=[[]], as_text=False, ensure_ascii=True, wrap=False)
@example(value=[{"action": "message"}] * 50, as_text=False, ensure_ascii=True, wrap=False)
def test_import_arbitrary_json(env: Env, value: Any, as_text: bool, ensure_ascii: bool, wrap: bool) -> None:
    check_import(env, encode(value, as_text, ensure_ascii, wrap))


@budget(250)
@given(raw=trajectories(WIDE_INTS, SHORT_TEXT))
@example(raw=b'[{"action": "message", "id": -1}]')
@example(raw=b'[{"action": "message", "id": 3}, {"action": "message", "id": 3}]')
@example(raw=b'[{"action": "message", "id": 9223372036854775807}, {"observation": "run"}]')
@example(raw=b'[{"action": "message", "id": 18446744073709551616}]')
@example(raw=b'[{"action": "message", "args": {"a": {"b": {"c": [[[[null]]]]}}}, "extras": []}]')
@example(raw=b'[{"action": "message", "observation": "run"}]')
@example(raw='[{"action": "message", "message": "\\ud800"}]')
@example(raw=b'[{"action": "message", "timestamp": "2024-13-01"}]')
@example(raw=b'{"trajectory": [{"action": "m", "id": true}, {"action": "m", "id": 1.0}]}')
def test_import_plausible_event_lists(env: Env, raw: bytes | str) -> None:
    expected_ids: list[Any] = []  # the parsed events, if they parse
    with contextlib.suppress(ConvtuiError):
        expected_ids = parse_trajectory(raw)
    # Integers beyond 64 bits, and ids whose successor is: see the xfail test below.
    assume(ints_fit_in_64_bits(expected_ids) and ids_below_2_63(expected_ids))
    check_import(env, raw)


def near_the_limit(last: int, tail: list[dict[str, Any]]) -> str:
    return json.dumps([{"action": "message", "id": last}, *tail])


def digits_for_an_int(key: str, number: int) -> str:
    return json.dumps([{"action": "message", key: str(number)}])


@budget(20)
@given(
    raw=st.one_of(
        st.builds(
            near_the_limit,
            st.integers(U64_MAX - 3, U64_MAX),
            st.lists(st.just({"action": "message"}), max_size=3),
        ),
        st.builds(digits_for_an_int, st.sampled_from(["id", "cause"]), st.integers(2**64, 10**40)),
    )
)
@example(raw=near_the_limit(U64_MAX, [{"action": "message"}]))
def test_import_integers_beyond_64_bits(env: Env, raw: str) -> None:
    check_import(env, raw)


# -- event JSON ----------------------------------------------------------------------------


class Logs:
    """A fresh event log (holding one event) for every example, so that ids
    taken by one example do not decide what the next may append."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.count = 0

    def fresh(self) -> EventLog:
        self.count += 1
        directory = self.root / f"conversation-{self.count}"
        directory.mkdir(parents=True)
        log = EventLog(directory)
        log.append([{"source": "user", "action": "message", "message": "first"}])
        return log


@pytest.fixture
def logs(tmp_path: Path) -> Logs:
    return Logs(tmp_path / "logs")


def check_append(log: EventLog, events: list[Any], keep_ids: bool) -> None:
    before = log.path.read_bytes()
    count = len(log)
    accepted, result = attempt(lambda: log.append(events, keep_ids))
    if not accepted:
        assert log.path.read_bytes() == before, "a refused append changed events.jsonl"
        assert len(log) == count
        assert isinstance(result, InvalidInput)
        return
    assert len(result) == len(events)
    if not result:
        assert log.path.read_bytes() == before
        return
    ids = [event["id"] for event in result]
    assert ids == sorted(set(ids)) and ids[0] > log.search_events()[count - 1]["id"]
    assert all(event["timestamp"] for event in result)
    # A fresh reader (another process) sees exactly what append returned.
    assert EventLog(log.directory).search_events()[count:] == result
    assert log.search_events()[count:] == result
    for stored, given_event in zip(result, events):
        for key, value in given_event.items():
            if key not in ("id", "timestamp", "cause", "hidden", "source"):  # assigned or coerced by pydantic
                assert stored[key] == value, key


def arbitrary_events(ints: st.SearchStrategy[int], text: st.SearchStrategy[str]) -> st.SearchStrategy[list[Any]]:
    one = st.one_of(
        st.dictionaries(json_keys(text), json_values(ints, text, max_leaves=8), max_size=6),
        plausible_event(ints, text),
        plausible_event(ints, text, valid=True),
        st.builds(lambda event, extras: {**event, **extras}, plausible_event(ints, text, valid=True),
                  st.fixed_dictionaries({}, optional={"id": ints, "cause": ints, "hidden": st.booleans()})),
    )
    return st.lists(one, max_size=3)


@budget(250)
@given(events=arbitrary_events(SAFE_INTS, SHORT_TEXT), keep_ids=st.booleans())
@example(events=[{"action": "run", "extras": {"exit_code": 2**63}}], keep_ids=False)
@example(events=[{"action": "run", "id": 1}, {"action": "run", "id": 1}], keep_ids=True)
@example(events=[{"action": "run"}, {"oops": True}], keep_ids=False)
@example(events=[{"action": "run", "args": {"1": {"2": None}}, "hidden": "yes"}], keep_ids=False)
@example(events=[{"action": "run", "timestamp": "2024-01-01T00:00:00\x00"}], keep_ids=False)
def test_event_append_accepted_or_refused_cleanly(logs: Logs, events: list[Any], keep_ids: bool) -> None:
    assume(ids_below_2_63(events))
    check_append(logs.fresh(), events, keep_ids)


@budget(20)
@given(
    key=st.sampled_from(["cause", "extras", "args", "tool_call_metadata"]),
    number=st.one_of(st.integers(min_value=2**64), st.integers(max_value=-(2**63) - 1)),
    as_digits=st.booleans(),
)
@example(key="cause", number=2**64, as_digits=False)
def test_event_append_integers_beyond_64_bits(logs: Logs, key: str, number: int, as_digits: bool) -> None:
    value: Any = number if key in ("cause", "tool_call_metadata") else {"n": number}
    if as_digits and key == "cause":
        value = str(number)  # pydantic's lax int parses digits of any length
    check_append(logs.fresh(), [{"action": "run", key: value}], keep_ids=False)


@budget(20)
@given(
    key=st.sampled_from(["message", "content", "thought", "observation"]),
    text=with_a_surrogate(hostile_text(40)),
)
@example(key="message", text="\ud800")
def test_event_append_lone_surrogates(logs: Logs, key: str, text: str) -> None:
    event: dict[str, Any] = {"action": "run", key: text}
    if key == "observation":
        event = {"observation": "run", "content": text}
    check_append(logs.fresh(), [event], keep_ids=False)


# -- the command line ----------------------------------------------------------------------


@pytest.fixture
def cli_root(env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data directory with two conversations; the CLI opens it itself.
    An internal error's log goes to tmp_path, not the shared /tmp."""
    env.new(initial_user_msg="hello", repository="acme/app")
    env.run(env.service.rename(env.new(), "Fix [bold]build[/bold]"))
    env.seeded = tuple(env.ids())
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return env.root


@st.composite
def cli_argv(draw: st.DrawFn, text: st.SearchStrategy[str], ids: tuple[str, ...] = ()) -> list[str]:
    command = draw(st.sampled_from(["rename", "show", "new", "list"]))
    prefixes = st.sampled_from(ids).flatmap(lambda i: st.integers(1, 32).map(lambda n: i[:n])) if ids else st.nothing()
    identifier = draw(
        st.one_of(
            text, prefixes, prefixes, st.text(HEX, min_size=1, max_size=8), st.sampled_from(["", "-", "--", "-x", "../.."])
        )
    )
    flags = draw(st.lists(st.sampled_from(["--json", "--events", "--all", "--archived"]), max_size=2, unique=True))
    if command == "rename":
        argv = ["rename", identifier, draw(text)]
    elif command == "show":
        argv = ["show", identifier, *[flag for flag in flags if flag in ("--json", "--events")]]
    elif command == "new":
        argv = ["new", *([draw(text)] if draw(st.booleans()) else []), *[flag for flag in flags if flag == "--json"]]
    else:
        argv = ["list", "--query", draw(text), *[flag for flag in flags if flag in ("--json", "--all", "--archived")]]
    return argv


def run_cli(root: Path, argv: list[str]) -> tuple[int, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = main(["--data-dir", str(root), *argv])
        except SystemExit as exit_:  # argparse: usage errors, --help
            code = exit_.code if isinstance(exit_.code, int) else 2
    return code, stderr.getvalue()


def check_cli(root: Path, argv: list[str]) -> None:
    code, err = run_cli(root, argv)
    hypothesis.event(f"{argv[0]}: exit {code}")
    assert code in (0, 1, 2), (argv, code, err)
    assert "Traceback" not in err and "internal error" not in err, (argv, err)
    if code == 1:
        assert err.startswith("convtui:") and err.endswith("\n") and err.count("\n") == 1, (argv, err)
        assert "internal error" not in err, (argv, err)


# Real argv holds no NUL; what it may hold beyond UTF-8 is surrogate-escaped
# bytes (U+DC80..U+DCFF), left to the xfail test below.
CLI_TEXT = hostile_text(200).map(lambda text: text.replace("\x00", ""))


@budget(50)
@given(data=st.data())
@example(data=["rename", "zz", "x"])
@example(data=["show", "../../etc/passwd", "--json"])
@example(data=["show", "-x"])
@example(data=["rename", "--", "-h"])
@example(data=["list", "--query"])
@example(data=["new", "a\nb", "--json"])
@example(data=["new", "a\x1b[2Jb\u2028"])
@example(data=["list", "--query", "status:bogus [bold]", "--all"])
def test_cli_exit_codes_and_one_line_errors(env: Env, cli_root: Path, data: st.DataObject | list[str]) -> None:
    """`data` is an argv in the explicit examples, else drawn with the seeded
    ids (only those: conversations `new` adds must not change what is drawn)."""
    if isinstance(data, list):
        argv = data
    else:
        argv = data.draw(cli_argv(CLI_TEXT, env.seeded), label="argv")
    check_cli(cli_root, argv)


@budget(10)
@given(
    argv=cli_argv(
        with_a_surrogate(hostile_text(30)).map(lambda text: "".join(
            chr(0xDC80 + ord(c) % 128) if 0xD800 <= ord(c) <= 0xDFFF else c for c in text.replace("\x00", "")
        ))
    ).filter(lambda argv: argv[0] in ("new", "rename") and len(argv) > 1)
)
@example(argv=["new", "fix \udcff"])
def test_cli_with_undecodable_argv_bytes(cli_root: Path, argv: list[str]) -> None:
    check_cli(cli_root, argv)
