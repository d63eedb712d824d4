"""The agent's workspace: path confinement, file tools, commands, clone.

Real files in tmp_path and real subprocesses throughout."""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

from convtui.backend.errors import ConvtuiError, InvalidInput
from convtui.backend.redaction import REDACTED
from convtui.backend.runtime import (
    CommandResult,
    PathOutsideWorkspace,
    Workspace,
    WorkspaceSetupError,
    group_members,
    repository_source,
)

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "ws")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory beside the workspace holding a file the agent must not reach."""
    directory = tmp_path / "outside"
    directory.mkdir()
    (directory / "secret.txt").write_text("top secret\n")
    return directory


def _one_line(error: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(error.value)
    assert message and "\n" not in message
    return message


async def _gone_within(pgid: int, seconds: float) -> bool:
    """True once no live process of group `pgid` remains (zombies left to a
    slow init do not count), polling for at most `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not group_members(pgid):
            return True
        await asyncio.sleep(0.02)
    return not group_members(pgid)


# -- paths -----------------------------------------------------------------------------


def test_root_is_created_and_resolved(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real)
    ws = Workspace(tmp_path / "alias" / "new" / "ws")
    assert ws.root == real.resolve() / "new" / "ws"
    assert ws.root.is_dir()
    assert ws.resolve("a.txt") == ws.root / "a.txt"


def test_agent_paths_map_into_the_root(ws: Workspace) -> None:
    root = ws.root
    assert ws.resolve("/workspace") == root
    assert ws.resolve("/workspace/") == root
    assert ws.resolve("/workspace/a.txt") == root / "a.txt"
    assert ws.resolve("/workspace//a/b.txt") == root / "a" / "b.txt"
    assert ws.resolve("a/b.txt") == root / "a" / "b.txt"
    assert ws.resolve("./a/../b.txt") == root / "b.txt"
    assert ws.resolve(".") == root
    assert ws.resolve("/workspace/a/..") == root
    assert ws.display_path(root) == "/workspace"
    assert ws.display_path(root / "a" / "b.txt") == "/workspace/a/b.txt"


@pytest.mark.parametrize(
    "path", ["/etc/passwd", "/workspace2/a.txt", "/", "../x", "a/../../x", "/workspace/../x", "..", "/workspace/.."]
)
def test_paths_outside_the_root_are_refused(ws: Workspace, path: str) -> None:
    with pytest.raises(PathOutsideWorkspace) as error:
        ws.resolve(path)
    assert repr(path) in _one_line(error)
    assert isinstance(error.value, InvalidInput)


def test_empty_and_nul_paths_are_refused(ws: Workspace) -> None:
    with pytest.raises(InvalidInput, match="path is empty"):
        ws.resolve("")
    with pytest.raises(InvalidInput, match="path is empty"):
        ws.resolve("  ")
    with pytest.raises(InvalidInput, match="NUL") as error:
        ws.resolve("a\x00b")
    _one_line(error)
    with pytest.raises(InvalidInput, match="must be text"):
        ws.resolve(None)  # type: ignore[arg-type]


def test_a_path_with_a_newline_gives_a_one_line_message(ws: Workspace) -> None:
    with pytest.raises(PathOutsideWorkspace) as error:
        ws.resolve("/etc/\npasswd")
    _one_line(error)


def test_symlink_pointing_outside_is_refused_for_reading_and_writing(ws: Workspace, outside: Path) -> None:
    (ws.root / "link.txt").symlink_to(outside / "secret.txt")
    (ws.root / "linkdir").symlink_to(outside)
    for path in ("link.txt", "/workspace/link.txt", "linkdir/secret.txt", "linkdir/new.txt", "linkdir"):
        with pytest.raises(PathOutsideWorkspace):
            ws.resolve(path)
        with pytest.raises(PathOutsideWorkspace):
            ws.read(path)
    with pytest.raises(PathOutsideWorkspace):
        ws.create("linkdir/new.txt", "x")
    with pytest.raises(PathOutsideWorkspace):
        ws.str_replace("link.txt", "top", "pwned")
    with pytest.raises(PathOutsideWorkspace):
        ws.insert("link.txt", 0, "pwned")
    assert (outside / "secret.txt").read_text() == "top secret\n"
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def test_dangling_symlink_pointing_outside_cannot_be_created_through(ws: Workspace, outside: Path) -> None:
    (ws.root / "planted").symlink_to(outside / "created-by-agent.txt")
    with pytest.raises(PathOutsideWorkspace):
        ws.create("planted", "x")
    assert not (outside / "created-by-agent.txt").exists()


def test_symlink_pointing_inside_is_followed(ws: Workspace) -> None:
    (ws.root / "real").mkdir()
    (ws.root / "real" / "a.txt").write_text("alpha\n")
    (ws.root / "alias.txt").symlink_to("real/a.txt")
    (ws.root / "aliasdir").symlink_to(ws.root / "real")
    assert ws.resolve("alias.txt") == ws.root / "real" / "a.txt"
    assert ws.read("alias.txt") == "     1\talpha"
    assert ws.read("aliasdir/a.txt") == "     1\talpha"
    ws.str_replace("alias.txt", "alpha", "beta")
    assert (ws.root / "real" / "a.txt").read_text() == "beta\n"
    assert (ws.root / "alias.txt").is_symlink()  # the link itself is kept
    ws.create("aliasdir/b.txt", "b\n")
    assert (ws.root / "real" / "b.txt").read_text() == "b\n"


def test_symlink_loop_is_an_error_not_a_hang(ws: Workspace) -> None:
    (ws.root / "loop1").symlink_to("loop2")
    (ws.root / "loop2").symlink_to("loop1")
    with pytest.raises(InvalidInput) as error:
        ws.read("loop1")
    _one_line(error)


# -- read ------------------------------------------------------------------------------


def test_read_numbers_lines_like_cat_n(ws: Workspace) -> None:
    (ws.root / "a.txt").write_text("one\ntwo\n\nfour")
    assert ws.read("/workspace/a.txt") == "     1\tone\n     2\ttwo\n     3\t\n     4\tfour"
    (ws.root / "empty.txt").write_text("")
    assert ws.read("empty.txt") == ""


def test_read_view_range(ws: Workspace) -> None:
    (ws.root / "a.txt").write_text("".join(f"line {n}\n" for n in range(1, 11)))
    assert ws.read("a.txt", (2, 3)) == "     2\tline 2\n     3\tline 3"
    assert ws.read("a.txt", (9, -1)) == "     9\tline 9\n    10\tline 10"
    assert ws.read("a.txt", [10, 10]) == "    10\tline 10"  # a JSON list works too
    assert ws.read("a.txt", (9, 500)) == ws.read("a.txt", (9, -1))  # end is clamped


@pytest.mark.parametrize(
    ("view_range", "message"),
    [
        ((0, 2), "view_range start 0 is out of range: /workspace/a.txt has lines 1 to 3"),
        ((4, -1), "view_range start 4 is out of range"),
        ((3, 2), "view_range end 2 is before start 3"),
        ((1, 2, 3), "view_range must be two line numbers"),
        ("12", "view_range must be two line numbers"),
        ((1.5, 2), "view_range start must be an integer"),
        ((True, 2), "view_range start must be an integer"),
    ],
)
def test_read_refuses_bad_view_ranges(ws: Workspace, view_range: object, message: str) -> None:
    (ws.root / "a.txt").write_text("a\nb\nc\n")
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(")) as error:
        ws.read("a.txt", view_range)  # type: ignore[arg-type]
    _one_line(error)


def test_read_of_an_empty_file_with_a_range_is_refused(ws: Workspace) -> None:
    (ws.root / "e.txt").write_text("")
    with pytest.raises(InvalidInput, match="is empty"):
        ws.read("e.txt", (1, -1))


def test_read_of_a_directory_lists_two_levels_without_hidden_items(ws: Workspace) -> None:
    for path in ("src/pkg/deep/too-deep.py", "src/pkg/mod.py", "src/main.py", "README", ".git/config", "src/.cache/x"):
        (ws.root / path).parent.mkdir(parents=True, exist_ok=True)
        (ws.root / path).write_text("x")
    assert ws.read("/workspace").splitlines() == [
        "Files and directories up to 2 levels deep in /workspace, hidden items excluded:",
        "/workspace/",
        "/workspace/README",
        "/workspace/src/",
        "/workspace/src/main.py",
        "/workspace/src/pkg/",
    ]
    assert ws.read("src").splitlines()[1:] == [
        "/workspace/src/",
        "/workspace/src/main.py",
        "/workspace/src/pkg/",
        "/workspace/src/pkg/deep/",
        "/workspace/src/pkg/mod.py",
    ]
    with pytest.raises(InvalidInput, match="is a directory; view_range applies to files only"):
        ws.read("src", (1, 2))


def test_read_refuses_missing_binary_large_and_special_files(ws: Workspace) -> None:
    with pytest.raises(InvalidInput, match=r"^/workspace/nope\.txt does not exist$"):
        ws.read("nope.txt")
    (ws.root / "file.txt").write_text("x")
    with pytest.raises(InvalidInput, match="could not open /workspace/file.txt/x: Not a directory"):
        ws.read("file.txt/x")
    (ws.root / "blob.bin").write_bytes(b"\x7fELF\x00\x01\x02")
    with pytest.raises(InvalidInput, match=r"/workspace/blob\.bin is a binary file") as error:
        ws.read("blob.bin")
    _one_line(error)
    with open(ws.root / "big.log", "wb") as big:
        big.truncate(11 * 1024 * 1024)  # sparse: instant
    with pytest.raises(InvalidInput, match=r"/workspace/big\.log is 11\.0 MB; .* up to 10 MB: use a shell command"):
        ws.read("big.log")
    os.mkfifo(ws.root / "fifo")  # opening it for reading must not hang
    with pytest.raises(InvalidInput, match=r"/workspace/fifo is not a regular file"):
        ws.read("fifo")


def test_read_shows_invalid_utf8_as_replacement_characters(ws: Workspace) -> None:
    (ws.root / "latin1.txt").write_bytes("café\n".encode("latin-1"))
    assert ws.read("latin1.txt") == "     1\tcaf\ufffd"


# -- create ----------------------------------------------------------------------------


def test_create_makes_parents_and_refuses_existing_files(ws: Workspace) -> None:
    message = ws.create("/workspace/new/dir/a.py", "print(1)\nprint(2)\n")
    assert message == "Created /workspace/new/dir/a.py (2 lines, 18 bytes)."
    assert (ws.root / "new" / "dir" / "a.py").read_text() == "print(1)\nprint(2)\n"
    assert [p.name for p in (ws.root / "new" / "dir").iterdir()] == ["a.py"]  # no temporary left
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((ws.root / "new" / "dir" / "a.py").stat().st_mode) == 0o666 & ~umask
    with pytest.raises(InvalidInput, match=r"^/workspace/new/dir/a\.py already exists; use str_replace") as error:
        ws.create("new/dir/a.py", "other")
    _one_line(error)
    assert (ws.root / "new" / "dir" / "a.py").read_text() == "print(1)\nprint(2)\n"
    with pytest.raises(InvalidInput, match="/workspace/new already exists"):
        ws.create("new", "x")
    with pytest.raises(InvalidInput, match="/workspace already exists"):
        ws.create("/workspace", "x")
    assert ws.create("empty.txt", "") == "Created /workspace/empty.txt (0 lines, 0 bytes)."


def test_create_refuses_bad_requests(ws: Workspace) -> None:
    with pytest.raises(InvalidInput, match="ends with '/'"):
        ws.create("dir/", "x")
    with pytest.raises(InvalidInput, match="file_text contains a NUL character"):
        ws.create("a.txt", "a\x00b")
    with pytest.raises(InvalidInput, match="file_text must be text, not int"):
        ws.create("a.txt", 3)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=r"would be 10\.0 MB"):
        ws.create("a.txt", "x" * (10 * 1024 * 1024 + 1))
    (ws.root / "file").write_text("x")
    with pytest.raises(InvalidInput, match="could not write /workspace/file/a.txt: Not a directory"):
        ws.create("file/a.txt", "x")
    assert sorted(p.name for p in ws.root.iterdir()) == ["file"]


# -- str_replace -----------------------------------------------------------------------


def test_str_replace_edits_once_and_shows_the_region(ws: Workspace) -> None:
    lines = [f"line {n}" for n in range(1, 21)]
    path = ws.root / "a.txt"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o751)
    inode = path.stat().st_ino
    message = ws.str_replace("/workspace/a.txt", "line 10\n", "ten\nTEN\n")
    assert path.read_text().splitlines()[8:12] == ["line 9", "ten", "TEN", "line 11"]
    assert message.splitlines() == [
        "Edited /workspace/a.txt. Lines 6-16 now read:",
        *[f"{n:6}\tline {n}" for n in range(6, 10)],
        "    10\tten",
        "    11\tTEN",
        *[f"{n:6}\tline {n - 1}" for n in range(12, 17)],
    ]
    assert stat.S_IMODE(path.stat().st_mode) == 0o751  # mode kept
    assert path.stat().st_ino != inode  # replaced by rename, not rewritten in place
    assert sorted(p.name for p in ws.root.iterdir()) == ["a.txt"]


def test_str_replace_can_delete(ws: Workspace) -> None:
    (ws.root / "a.txt").write_text("keep\ndrop\nkeep too\n")
    ws.str_replace("a.txt", "drop\n", "")
    assert (ws.root / "a.txt").read_text() == "keep\nkeep too\n"


def test_str_replace_refuses_no_match_and_several_matches(ws: Workspace) -> None:
    path = ws.root / "a.py"
    path.write_text("x = 1\ny = 2\nx = 1\n\nx = 1\n")
    with pytest.raises(InvalidInput, match=r"^no match for old_str in /workspace/a\.py; nothing was changed") as error:
        ws.str_replace("a.py", "z = 3", "q")
    _one_line(error)
    with pytest.raises(InvalidInput, match=r"old_str occurs 3 times in /workspace/a\.py, at lines 1, 3, 5;") as error:
        ws.str_replace("a.py", "x = 1", "x = 2")
    _one_line(error)
    path.write_text("aaa\n")
    with pytest.raises(InvalidInput, match="old_str occurs 2 times in /workspace/a.py, at lines 1, 1"):
        ws.str_replace("a.py", "aa", "b")  # overlapping occurrences are ambiguous too
    with pytest.raises(InvalidInput, match="old_str is empty"):
        ws.str_replace("a.py", "", "b")
    assert path.read_text() == "aaa\n"


def test_str_replace_refuses_bad_targets(ws: Workspace) -> None:
    with pytest.raises(InvalidInput, match="^/workspace/missing.py does not exist$"):
        ws.str_replace("missing.py", "a", "b")
    (ws.root / "dir").mkdir()
    with pytest.raises(InvalidInput, match="^/workspace/dir is a directory, not a file$"):
        ws.str_replace("dir", "a", "b")
    with pytest.raises(InvalidInput, match="^/workspace is a directory, not a file$"):
        ws.str_replace("/workspace", "a", "b")
    (ws.root / "latin1.txt").write_bytes("café\n".encode("latin-1"))
    with pytest.raises(InvalidInput, match="is not UTF-8 text; edit it with a shell command"):
        ws.str_replace("latin1.txt", "caf", "CAF")
    (ws.root / "blob").write_bytes(b"a\x00b")
    with pytest.raises(InvalidInput, match="is a binary file"):
        ws.str_replace("blob", "a", "b")
    (ws.root / "a.txt").write_text("a\n")
    with pytest.raises(InvalidInput, match="new_str contains a NUL character"):
        ws.str_replace("a.txt", "a", "\x00")


# -- insert ----------------------------------------------------------------------------


def test_insert_at_top_middle_and_end(ws: Workspace) -> None:
    path = ws.root / "a.txt"
    path.write_text("one\ntwo\n")
    path.chmod(0o600)
    assert ws.insert("a.txt", 0, "zero").startswith("Inserted 1 line(s) into /workspace/a.txt. Lines 1-3 now read:")
    assert path.read_text() == "zero\none\ntwo\n"
    message = ws.insert("a.txt", 2, "one and a half\nalmost two\n")
    assert path.read_text() == "zero\none\none and a half\nalmost two\ntwo\n"
    assert message.splitlines()[1:] == [
        "     1\tzero",
        "     2\tone",
        "     3\tone and a half",
        "     4\talmost two",
        "     5\ttwo",
    ]
    ws.insert("a.txt", 5, "three")
    assert path.read_text() == "zero\none\none and a half\nalmost two\ntwo\nthree\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_insert_after_a_last_line_without_newline(ws: Workspace) -> None:
    path = ws.root / "a.txt"
    path.write_text("one\ntwo")
    ws.insert("a.txt", 2, "three")
    assert path.read_text() == "one\ntwo\nthree\n"
    path.write_text("one\ntwo")
    ws.insert("a.txt", 1, "1.5")
    assert path.read_text() == "one\n1.5\ntwo"
    (ws.root / "empty.txt").write_text("")
    ws.insert("empty.txt", 0, "first")
    assert (ws.root / "empty.txt").read_text() == "first\n"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (3, r"^insert_line 3 is out of range: /workspace/a\.txt has 2 lines, so it must be between 0 and 2$"),
        (-1, "insert_line -1 is out of range"),
        ("1", "insert_line must be an integer"),
        (True, "insert_line must be an integer"),
    ],
)
def test_insert_refuses_bad_lines(ws: Workspace, line: object, message: str) -> None:
    (ws.root / "a.txt").write_text("one\ntwo\n")
    with pytest.raises(InvalidInput, match=message) as error:
        ws.insert("a.txt", line, "x")  # type: ignore[arg-type]
    _one_line(error)
    with pytest.raises(InvalidInput, match="new_str is empty"):
        ws.insert("a.txt", 0, "")
    assert (ws.root / "a.txt").read_text() == "one\ntwo\n"


def test_writes_replace_hard_links_instead_of_writing_through_them(ws: Workspace, outside: Path) -> None:
    os.link(outside / "secret.txt", ws.root / "hard.txt")
    ws.str_replace("hard.txt", "top", "no")
    assert (ws.root / "hard.txt").read_text() == "no secret\n"
    assert (outside / "secret.txt").read_text() == "top secret\n"


# -- run -------------------------------------------------------------------------------


async def test_run_reports_exit_codes_and_merges_stderr(ws: Workspace) -> None:
    assert await ws.run("echo out; echo err >&2", timeout=10) == CommandResult(
        exit_code=0, output="out\nerr\n", timed_out=False, truncated=False
    )
    result = await ws.run("exit 3", timeout=10)
    assert (result.exit_code, result.output, result.timed_out) == (3, "", False)
    assert (await ws.run("kill -9 $$", timeout=10)).exit_code == -9


async def test_run_uses_the_root_and_no_stdin(ws: Workspace) -> None:
    assert (await ws.run("pwd", timeout=10)).output == f"{ws.root}\n"
    result = await ws.run("cat; echo done", timeout=5)  # stdin is /dev/null: cat ends at once
    assert result.output == "done\n"
    await ws.run("echo hi > made.txt", timeout=10)
    assert (ws.root / "made.txt").read_text() == "hi\n"


async def test_run_survives_the_root_being_deleted(ws: Workspace) -> None:
    shutil.rmtree(ws.root)
    assert (await ws.run("echo alive", timeout=10)).output == "alive\n"


async def test_run_caps_output_keeping_head_and_tail_in_bounded_memory(ws: Workspace) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    started = time.monotonic()
    result = await ws.run("echo START; yes | head -c 50000000; echo END", timeout=30, max_output=1_000)
    assert time.monotonic() - started < 10
    growth_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert growth_mib < 30, f"peak memory grew by {growth_mib:.0f} MiB for 50 MB of output"
    assert (result.exit_code, result.truncated, result.timed_out) == (0, True, False)
    assert len(result.output) <= 1_000
    assert result.output.startswith("START\ny\ny\n")
    assert result.output.endswith("y\ny\nEND\n")
    cut = [line for line in result.output.splitlines() if line.startswith("[...")]
    assert len(cut) == 1 and cut[0].endswith("characters cut ...]")
    kept = len(result.output) - len(cut[0]) - 2
    assert int(cut[0].split()[1].replace(",", "")) == len("START\n") + 50_000_000 + len("END\n") - kept


async def test_run_output_at_the_limit_is_not_cut(ws: Workspace) -> None:
    result = await ws.run("printf '%0500d' 0", timeout=10, max_output=500)
    assert (result.output, result.truncated) == ("0" * 500, False)
    result = await ws.run("printf '%0501d' 0", timeout=10, max_output=500)
    assert result.truncated and len(result.output) <= 500


async def test_run_decodes_utf8_across_chunks_and_replaces_bad_bytes(ws: Workspace) -> None:
    result = await ws.run("python3 -c \"import sys; sys.stdout.write('é' * 200000)\"; printf '\\377\\n'", timeout=10,
                          max_output=1_000_000)
    assert result.output == "é" * 200000 + "\ufffd\n"


async def test_timeout_kills_the_whole_process_group(ws: Workspace) -> None:
    started = time.monotonic()
    result = await ws.run("echo $$; sleep 100 & sleep 100", timeout=0.5)
    assert time.monotonic() - started < 1.5
    assert (result.exit_code, result.timed_out) == (None, True)
    pgid = int(result.output.split()[0])
    assert await _gone_within(pgid, 0.5)


async def test_timeout_escalates_to_sigkill_for_processes_ignoring_sigterm(ws: Workspace) -> None:
    started = time.monotonic()
    result = await ws.run("trap '' TERM; echo $$; sleep 100 & sleep 100", timeout=0.3)
    assert time.monotonic() - started < 1.8
    assert result.timed_out and result.exit_code is None
    assert await _gone_within(int(result.output.split()[0]), 0.5)


async def test_a_background_job_holding_the_output_lasts_until_the_timeout(ws: Workspace) -> None:
    result = await ws.run("echo $$; sleep 100 &", timeout=0.3)
    assert result.timed_out
    assert await _gone_within(int(result.output.split()[0]), 0.5)


async def test_a_detached_background_job_outlives_the_command(ws: Workspace) -> None:
    result = await ws.run("sleep 100 > /dev/null 2>&1 & echo $$", timeout=10)
    pgid = int(result.output)
    try:
        assert (result.exit_code, result.timed_out) == (0, False)
        assert group_members(pgid)
    finally:
        os.killpg(pgid, 9)
    assert await _gone_within(pgid, 1)


@pytest.mark.parametrize("command", ["sleep 100", "sleep 100 & sleep 100"])
async def test_cancel_kills_the_group_within_a_second(ws: Workspace, command: str) -> None:
    task = asyncio.create_task(ws.run(f"echo $$ > pid; {command}", timeout=60))
    pid_file = ws.root / "pid"
    while not (pid_file.exists() and pid_file.read_text().endswith("\n")):
        await asyncio.sleep(0.01)
    pgid = int(pid_file.read_text())
    await asyncio.sleep(0.1)
    assert group_members(pgid)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 1
    assert await _gone_within(pgid, 1 - (time.monotonic() - started))
    with pytest.raises(ChildProcessError):  # reaped: no zombie of ours
        os.waitpid(pgid, os.WNOHANG)


async def test_no_zombie_after_a_normal_run(ws: Workspace) -> None:
    result = await ws.run("echo $$", timeout=10)
    pid = int(result.output)
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    assert not Path(f"/proc/{pid}").exists() or "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[-1][:3]


async def test_run_refuses_bad_arguments(ws: Workspace) -> None:
    with pytest.raises(InvalidInput, match="command is empty"):
        await ws.run("  ", timeout=1)
    with pytest.raises(InvalidInput, match="command contains a NUL character"):
        await ws.run("echo \x00", timeout=1)
    for timeout in (0, -1, float("nan"), float("inf"), True, "5"):
        with pytest.raises(InvalidInput, match="timeout must be a positive number of seconds"):
            await ws.run("true", timeout=timeout)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="max_output must be an integer of at least 200"):
        await ws.run("true", timeout=1, max_output=10)
    with pytest.raises(InvalidInput, match="command is too long"):
        await ws.run("echo " + "x" * 200_000, timeout=5)


async def test_run_falls_back_to_sh_without_bash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("convtui.backend.runtime.shutil.which", lambda name: None)
    ws = Workspace(tmp_path / "ws")
    assert (await ws.run("echo fallback", timeout=10)).output == "fallback\n"


# -- secrets ---------------------------------------------------------------------------

SECRET = "sk-test-0123456789abcdef"


async def test_environment_is_scrubbed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "openai-key-value")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "anthropic-key-value")
    monkeypatch.setenv("CONVTUI_LLM_API_KEY", "convtui-key-value")
    monkeypatch.setenv("HOLDS_THE_SECRET", f"Bearer {SECRET}")
    monkeypatch.setenv("HARMLESS_VARIABLE", "still here")
    ws = Workspace(tmp_path / "ws", hidden_secrets=[SECRET])
    output = (await ws.run("env", timeout=10)).output
    for leaked in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "CONVTUI_LLM_API_KEY", "HOLDS_THE_SECRET", "key-value", SECRET):
        assert leaked not in output
    assert "HARMLESS_VARIABLE=still here" in output
    assert "PATH=" in output


async def test_removed_variables_can_be_chosen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "kept-this-time")
    monkeypatch.setenv("MY_TOKEN", "removed-this-time")
    ws = Workspace(tmp_path / "ws", removed_variables=["MY_TOKEN"])
    output = (await ws.run("env", timeout=10)).output
    assert "OPENAI_API_KEY=kept-this-time" in output and "MY_TOKEN" not in output


async def test_secrets_are_redacted_from_output_even_across_chunks(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws", hidden_secrets=[SECRET, "short", ""])
    result = await ws.run(f"echo 'key={SECRET}!'; echo short; echo shortcut", timeout=10)
    # Secrets under 8 characters are redacted only as whole words.
    assert result.output == f"key={REDACTED}!\n{REDACTED}\nshortcut\n"
    half = len(SECRET) // 2
    result = await ws.run(f"printf %s '{SECRET[:half]}'; sleep 0.2; printf '%s\\n' '{SECRET[half:]}'", timeout=10)
    assert result.output == f"{REDACTED}\n"
    # Cut into head and tail: the secret straddling the cut must not leak in part.
    result = await ws.run(f"for i in $(seq 300); do printf '%s' '{SECRET}'; done", timeout=10, max_output=1_000)
    assert result.truncated
    assert SECRET[:8] not in result.output and SECRET[-8:] not in result.output


async def test_secrets_are_redacted_from_file_reads(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws", hidden_secrets=[SECRET])
    (ws.root / ".env").write_text(f"API_KEY={SECRET}\n")
    assert ws.read(".env") == f"     1\tAPI_KEY={REDACTED}"
    assert SECRET not in ws.str_replace(".env", "API_KEY", "KEY")


# -- clone -----------------------------------------------------------------------------


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        cwd=cwd, check=True, capture_output=True, text=True,
    ).stdout.strip()


@pytest.fixture
def source_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "source"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("main\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "first")
    _git(repo, "checkout", "-q", "-b", "feature")
    (repo / "feature.txt").write_text("feature\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "feature")
    _git(repo, "checkout", "-q", "main")
    return repo


@needs_git
async def test_clone_a_local_repository_and_branch(ws: Workspace, source_repo: Path) -> None:
    await ws.clone(str(source_repo), "feature")
    assert (ws.root / "feature.txt").read_text() == "feature\n"
    assert _git(ws.root, "rev-parse", "--abbrev-ref", "HEAD") == "feature"
    assert _git(ws.root, "branch", "-r") == "origin/feature"  # single branch
    # Resuming: a .git is there, so nothing happens (even with another source).
    (ws.root / "work.txt").write_text("agent's work")
    await ws.clone("/no/such/repository", None)
    assert (ws.root / "work.txt").exists()


@needs_git
async def test_clone_default_branch_and_file_url(tmp_path: Path, source_repo: Path) -> None:
    first = Workspace(tmp_path / "one")
    await first.clone(str(source_repo), None)
    assert _git(first.root, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert not (first.root / "feature.txt").exists()
    second = Workspace(tmp_path / "two")
    await second.clone(f"file://{source_repo}", "main")
    assert (second.root / "README.md").read_text() == "main\n"


@needs_git
async def test_clone_failures_name_gits_error_and_leave_the_root_empty(ws: Workspace, source_repo: Path) -> None:
    missing = ws.root.parent / "missing"
    with pytest.raises(WorkspaceSetupError) as error:
        await ws.clone(str(missing), None)
    assert _one_line(error) == f"git clone failed: fatal: repository '{missing}' does not exist"
    assert list(ws.root.iterdir()) == []
    with pytest.raises(WorkspaceSetupError, match="git clone failed: .*nope.* not found") as error:
        await ws.clone(str(source_repo), "nope")
    _one_line(error)
    assert list(ws.root.iterdir()) == []
    assert isinstance(error.value, ConvtuiError)


@needs_git
async def test_clone_refuses_a_non_empty_root_and_bad_input(ws: Workspace, source_repo: Path) -> None:
    (ws.root / "stray.txt").write_text("x")
    with pytest.raises(WorkspaceSetupError, match="is not empty and is not a git repository"):
        await ws.clone(str(source_repo), None)
    assert [p.name for p in ws.root.iterdir()] == ["stray.txt"]
    with pytest.raises(InvalidInput, match="not a valid git branch name"):
        await ws.clone(str(source_repo), "--upload-pack=evil")
    with pytest.raises(InvalidInput, match="repository is empty"):
        await ws.clone(" ", None)
    with pytest.raises(InvalidInput, match="control character"):
        await ws.clone("owner/na\x07me", None)


@needs_git
async def test_clone_timeout_is_reported(ws: Workspace, source_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A git that hangs: a wrapper named git that sleeps, first on PATH.
    bin_dir = ws.root.parent / "bin"
    bin_dir.mkdir()
    (bin_dir / "git").write_text("#!/bin/sh\nmkdir .git\nexec sleep 100\n")
    (bin_dir / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    with pytest.raises(WorkspaceSetupError, match=r"^git clone timed out after 0\.3 s$"):
        await ws.clone(str(source_repo), None, timeout=0.3)
    assert list(ws.root.iterdir()) == []  # the partial .git is gone, so a retry is not taken for a resume


def test_repository_source() -> None:
    assert repository_source("owner/name") == "https://github.com/owner/name.git"
    assert repository_source("https://gitlab.com/a/b.git") == "https://gitlab.com/a/b.git"
    assert repository_source("git@github.com:a/b.git") == "git@github.com:a/b.git"
    assert repository_source("ssh://git@host/a/b") == "ssh://git@host/a/b"
    assert repository_source("file:///srv/repo") == "file:///srv/repo"
    assert repository_source("/srv/repo") == "/srv/repo"
    assert repository_source("./some/dir").startswith("/")
    assert repository_source("-evil") == os.path.abspath("-evil")  # never an option
    assert repository_source("ext::sh -c evil").startswith("/")  # never a transport
