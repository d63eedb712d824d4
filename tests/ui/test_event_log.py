"""The event log on its own, in a small host app: it follows the newest
event whatever changes its size, wraps at word boundaries, shows agent
Markdown (literally: no console markup, no escape sequences) and lays out
only what comes into view."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from textual.app import App, ComposeResult
from textual.scrollbar import ScrollTo

from convtui.widgets.detail_pane import DetailPane
from convtui.widgets.event_log import EventLog

from .seed import settle


def agent(event_id: int, text: str) -> dict:
    return {"id": event_id, "source": "agent", "action": "message", "message": text, "args": {"content": text}}


def user(event_id: int, text: str) -> dict:
    return {"id": event_id, "source": "user", "action": "message", "message": text, "args": {"content": text}}


def run_output(event_id: int, text: str) -> dict:
    return {"id": event_id, "source": "agent", "observation": "run", "content": text, "extras": {"exit_code": 0}}


class Host(App[None]):
    def compose(self) -> ComposeResult:
        yield DetailPane(lambda: datetime(2026, 1, 1, tzinfo=timezone.utc), id="detail")


def painted(log: EventLog) -> list[str]:
    """The text of the log's lines as they are on screen now."""
    top = int(log.scroll_offset.y)
    log._paint_top, log._paint_width = top, log.scrollable_content_region.width
    return [log.render_line(y).text.rstrip() for y in range(log.scrollable_content_region.height)]


def shows_the_end(log: EventLog) -> bool:
    total = log.line_count if hasattr(log, "line_count") else len(log._lines)  # (before: every line laid out)
    return int(log.scroll_offset.y) + log.scrollable_content_region.height >= total


async def test_the_newest_event_stays_in_view_while_following() -> None:
    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(DetailPane)
        log = pane.event_log
        log.set_events([user(number, f"message number {number}") for number in range(40)])
        await settle(pilot, lambda: shows_the_end(log))
        # The approval bar appears in the same frame as the action it asks about.
        action = {"id": 40, "source": "agent", "action": "run", "args": {"command": "rm -rf build"}}
        log.add_event(action)
        pane.show_pending(action)
        await settle(pilot)
        assert shows_the_end(log) and "$ rm -rf build" in painted(log)[-1]
        pane.show_pending(None)
        await settle(pilot)
        assert shows_the_end(log)
        await pilot.resize_terminal(80, 14)
        await settle(pilot)
        assert shows_the_end(log)
        await pilot.resize_terminal(60, 30)
        await settle(pilot)
        assert shows_the_end(log)
        # A long event is shown down to its last line.
        log.add_event(agent(41, "\n\n".join(f"paragraph {number}" for number in range(30)) + "\n\nthe very end"))
        await settle(pilot)
        assert shows_the_end(log) and painted(log)[-1].strip() == "the very end"
        # Scrolled up by the user: new events do not pull the view down.
        await pilot.click(EventLog)
        await pilot.press("home")
        log.add_event(user(42, "later"))
        await settle(pilot)
        assert int(log.scroll_offset.y) == 0
        await pilot.press("end")
        assert shows_the_end(log)
        # Dragging the scrollbar up stops following too; back at the end follows again.
        log.post_message(ScrollTo(y=0, animate=False))
        await settle(pilot, lambda: int(log.scroll_offset.y) == 0)
        log.add_event(user(43, "even later"))
        await settle(pilot)
        assert int(log.scroll_offset.y) == 0
        log.post_message(ScrollTo(y=log.max_scroll_y, animate=False))
        await settle(pilot, lambda: shows_the_end(log))
        log.add_event(agent(44, "the newest"))
        await settle(pilot)
        assert shows_the_end(log) and painted(log)[-1].strip() == "the newest"


async def test_long_messages_wrap_at_word_boundaries() -> None:
    app = Host()
    async with app.run_test(size=(60, 24)) as pilot:
        log = app.query_one(EventLog)
        words = "alpha bravo charlie delta echo foxtrot golf hotel india juliett kilo lima mike november"
        message = f"{words} {words}"
        log.set_events([user(0, message)])
        await settle(pilot)
        body = [line.strip() for line in painted(log)[1:] if line.strip()]
        assert len(body) > 2  # it did wrap
        assert all(len(line) <= log.scrollable_content_region.width for line in body)
        assert " ".join(body).split() == message.split()  # no word was cut in two


async def test_agent_messages_are_markdown_and_literal() -> None:
    text = (
        "# Plan\n\n"
        "1. read `parser.py`\n"
        "2. keep [bold]this[/bold] as text\n\n"
        "```python\ndef answer():\n    return 42\n```\n\n"
        "escape \x1b[31mred\x1b[0m and \x1b]52;c;ZXZpbA==\x07 stay visible\n\n"
        "add a <script> tag and <b>these words</b>\n\n<div>\nan html block\n</div>"
    )
    app = Host()
    async with app.run_test(size=(80, 30)) as pilot:
        log = app.query_one(EventLog)
        log.set_events([agent(0, text)])
        await settle(pilot)
        lines = painted(log)
        screen = "\n".join(lines)
        assert "# Plan" not in screen and any(line.strip() == "Plan" for line in lines)
        assert "```" not in screen and any(line.strip() == "def answer():" for line in lines)
        assert any(line.strip().startswith("1 read parser.py") for line in lines)
        assert "[bold]this[/bold]" in screen
        assert "␛[31mred␛[0m" in screen and "␛]52;c;ZXZpbA==\\x07" in screen
        assert "\x1b" not in screen and "\x07" not in screen
        assert "add a <script> tag and <b>these words</b>" in screen and "an html block" in screen


async def test_a_long_conversation_lays_out_only_what_is_seen() -> None:
    markdown = "## Step\n\nI will **change** `module.py`:\n\n- one\n- two\n\n```\ncode\n```\n"
    events = []
    for number in range(6000):
        kind = number % 3
        events.append(
            agent(number, f"{markdown} {number}") if kind == 0
            else user(number, f"message {number} " * 20) if kind == 1
            else run_output(number, "output line\n" * 40)
        )
    app = Host()
    async with app.run_test(size=(100, 40)) as pilot:
        log = app.query_one(EventLog)
        started = time.perf_counter()
        log.set_events(events)
        await settle(pilot)
        opened = time.perf_counter() - started
        laid_out = sum(block is not None for block in log._blocks)
        assert laid_out < 40, laid_out
        assert shows_the_end(log) and "6000" not in "".join(painted(log))
        assert opened < 1.0, f"{opened:.2f} s to open 6000 events"
        started = time.perf_counter()
        for _ in range(20):
            await pilot.press("pageup")
        await settle(pilot)
        assert time.perf_counter() - started < 4.0
        assert sum(block is not None for block in log._blocks) < 200


async def test_a_message_shows_the_images_it_carries() -> None:
    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        log = app.query_one(DetailPane).event_log
        message = user(0, "What is wrong here?")
        message["args"]["image_urls"] = ["https://example.com/a.png", "data:image/png;base64,AAAA"]
        log.set_events([message])
        await settle(pilot)
        lines = painted(log)
        assert any("What is wrong here?" in line for line in lines)
        assert any("[image] https://example.com/a.png" in line for line in lines)
        assert any("[image] data:image/png;base64,AAAA" in line for line in lines)
