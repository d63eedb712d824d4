"""The `convtui` command: the terminal UI with no subcommand, and subcommands
for scripts. Exit codes: 0 ok, 1 the operation failed (one line on stderr),
2 a usage error."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from . import __version__
from .backend.data_dir import DATA_DIR_VARIABLE, default_data_dir
from .backend.errors import ConvtuiError, InvalidInput, MissingSettings, describe_os_error
from .backend.events import EventDict, event_kind, exit_code_of
from .backend.models import ConversationInfo, ConversationTrigger, NewConversationRequest, ProviderType
from .backend.settings import SETTING_NAMES, display_value, masked, parse_setting
from .formatting import format_cost, format_tokens, relative_time
from .terminal_text import inert, one_line

if TYPE_CHECKING:
    from .backend.interface import Backend
    from .backend.redaction import Redactor

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

log = logging.getLogger("convtui")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convtui",
        description="Manage AI coding-agent conversations from the terminal. "
        "With no command, opens the terminal UI.",
        epilog=f"Data directory: --data-dir, else ${DATA_DIR_VARIABLE}, else {default_data_dir()}.",
    )
    parser.add_argument("--version", action="version", version=f"convtui {__version__}")
    parser.add_argument("--data-dir", type=Path, metavar="DIR", help="where conversations are stored")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="open the UI on a temporary data directory with sample conversations that replay (no API key needed)",
    )
    parser.add_argument(
        "--no-server",
        action="store_true",
        help="do not use the background server: commands work on the data directory here and loops run "
        "in this process, ending when it ends (also: config set server off, or CONVTUI_SERVER=off)",
    )
    parser.add_argument(
        "--no-mouse",
        action="store_true",
        help="leave the mouse to the terminal, so text can be selected and copied (also: config set mouse off)",
    )
    parser.add_argument(
        "--remote",
        metavar="NAME",
        help="work on the conversations of an OpenHands server added with `convtui remote add` "
        "(the UI, and every conversation command)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    listing = commands.add_parser("list", help="list conversations, newest activity first")
    listing.add_argument("--json", action="store_true", help="print JSON (OpenHands ConversationInfo fields)")
    listing.add_argument("--all", action="store_true", help="include conversations idle longer than the max age")
    listing.add_argument("--archived", action="store_true", help="list archived conversations instead")
    listing.add_argument("--repo", metavar="R", help="only this repository")
    listing.add_argument("--trigger", metavar="T", help="only this trigger: " + ", ".join(t.value for t in ConversationTrigger))
    listing.add_argument("--status", metavar="S", help="only this status: starting, running, stopped, archived, error, waiting (for you: a reply or an approval), unread (events you have not seen), finished")
    listing.add_argument("--query", "-q", metavar="Q", help="words to find in title, repository, branch or id prefix")
    listing.add_argument("--text", metavar="WORDS", help="what it did: words in any of its events (messages, commands, outputs)")
    listing.add_argument("--file", metavar="PATH", help="what it did: a path it viewed or edited")
    listing.add_argument("--cmd", metavar="COMMAND", help="what it did: a command it ran")
    listing.add_argument("--limit", type=int, default=20, metavar="N", help="page size, 1-100 (default 20)")
    listing.add_argument("--page", metavar="TOKEN", help="the next_page_id a previous page gave")

    inbox = commands.add_parser("inbox", help="every conversation waiting for you, oldest wait first, and what it waits on")
    inbox.add_argument("--json", action="store_true", help="print JSON: kind, since, action, message and the conversation")
    dismiss = commands.add_parser("dismiss", help="take conversations whose loop ended (an error, a limit) out of the inbox")
    dismiss.add_argument("ids", nargs="+", metavar="id", help="conversation ids or unique prefixes")

    experiment = commands.add_parser(
        "exp-config",
        help="set a conversation's experiment config once: settings its loop runs with (JSON: {\"config\": {\"max_iterations\": \"10\"}})",
    )
    experiment.add_argument("id", help="conversation id or unique prefix")
    experiment.add_argument("file", type=Path, help="the JSON file (- for standard input)")

    processes = commands.add_parser(
        "processes", help="the background processes running in a conversation's workspace (its loop must run)"
    )
    processes.add_argument("id", help="conversation id or unique prefix")
    processes.add_argument("--stop", action="store_true", help="stop them (the loop runs on)")

    watch = commands.add_parser(
        "watch",
        help="print a line whenever a conversation starts waiting for you, finishes or fails (the server's loops, or with --remote the OpenHands server's agents; Ctrl-C ends)",
    )
    watch.add_argument("--on", metavar="KINDS", help="which: waiting, finished, error, comma-separated (default: the notify_on setting)")
    watch.add_argument(
        "--exec", metavar="CMD", dest="exec_command",
        help="run CMD with sh for each, given CONVTUI_ALERT_KIND, CONVTUI_CONVERSATION_ID, CONVTUI_TITLE and CONVTUI_DETAIL",
    )  # fmt: skip

    show = commands.add_parser("show", help="show one conversation")
    show.add_argument("id", help="conversation id or a unique prefix")
    show.add_argument("--json", action="store_true")
    show.add_argument("--events", action="store_true", help="include its events")

    new = commands.add_parser("new", help="create a conversation")
    new.add_argument("message", nargs="?", help="the first message to the agent")
    new.add_argument("--repo", metavar="R", help="owner/name, a git URL or a local git directory")
    new.add_argument("--branch", metavar="B")
    new.add_argument("--instructions", metavar="TEXT", help="extra instructions for the agent")
    new.add_argument("--replay", type=Path, metavar="FILE", help="an OpenHands trajectory JSON to replay")
    new.add_argument("--image", action="append", metavar="URL", dest="images", help="an image for the model (http(s) or data: URL; repeatable)")
    new.add_argument("--git-provider", choices=[provider.value for provider in ProviderType], help="where the repository lives")
    new.add_argument(
        "--trigger", choices=[trigger.value for trigger in ConversationTrigger], help="where the conversation comes from (default cli)"
    )
    new.add_argument(
        "--suggested-task", nargs=4, metavar=("TYPE", "REPO", "NUMBER", "TITLE"),
        help="work on a task: TYPE is MERGE_CONFLICTS, FAILING_CHECKS, UNRESOLVED_COMMENTS, OPEN_ISSUE or OPEN_PR; "
        "the first message is that task type's prompt",
    )  # fmt: skip
    new.add_argument("--create-microagent", metavar="REPO", help="a conversation to create a microagent for REPO")
    new.add_argument("--json", action="store_true")
    new.add_argument("--start", action="store_true", help="then run its loop in the foreground (like `run`)")
    new.add_argument("--yes", "-y", action="store_true", help="with --start: approve every action")
    new.add_argument("--stop-on-exit", action="store_true", help="with --start: Ctrl-C stops the loop")

    run = commands.add_parser(
        "run",
        help="run a conversation's loop, showing it here until it waits for you (Ctrl-C detaches from the server's loop); "
        "a loop already running is attached to, its last 10 events shown first. With --remote: the OpenHands server's "
        "agent (its sandbox resumed if paused), asked every 2 s",
    )
    run.add_argument("id")
    run.add_argument("--yes", "-y", action="store_true", help="approve every command and file write")
    run.add_argument("--stop-on-exit", action="store_true", help="Ctrl-C stops the loop instead of leaving it running (--remote: pauses its sandbox)")

    stop = commands.add_parser("stop", help="stop a conversation's loop wherever it runs (the server, or another convtui)")
    stop.add_argument("id")

    send = commands.add_parser("send", help="add a message for the agent (a running loop answers it, else the next run)")
    send.add_argument("id")
    send.add_argument("message")

    remember = commands.add_parser("remember", help="generate a remember prompt from the events around one")
    remember.add_argument("id")
    remember.add_argument("event_id", type=int, metavar="EVENT_ID")

    rename = commands.add_parser("rename", help="change a conversation's title")
    rename.add_argument("id")
    rename.add_argument("title")

    delete = commands.add_parser("delete", help="delete conversations with their events and workspaces for good (a running loop is stopped first)")
    delete.add_argument("ids", nargs="+", metavar="ID")
    delete.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")

    for name, text in (("archive", "hide conversations from the default list"), ("unarchive", "show them again")):
        command = commands.add_parser(name, help=text)
        command.add_argument("ids", nargs="+", metavar="ID")

    trash = commands.add_parser(
        "trash", help="list, restore or empty the trash (where d in the UI moves deleted conversations)"
    )
    trash_commands = trash.add_subparsers(dest="trash_command", metavar="ACTION")
    trash_list = trash_commands.add_parser("list", help="what the trash holds, most recently deleted first (the default)")
    trash_list.add_argument("--json", action="store_true")
    trash_restore = trash_commands.add_parser("restore", help="bring conversations back as they were")
    trash_restore.add_argument("ids", nargs="+", metavar="ID")
    trash_empty = trash_commands.add_parser("empty", help="delete trashed conversations for good (all, or those given)")
    trash_empty.add_argument("ids", nargs="*", metavar="ID")
    trash_empty.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")

    export = commands.add_parser("export", help="write a conversation as trajectory JSON, Markdown or an OpenHands zip")
    export.add_argument("id")
    export.add_argument(
        "--format",
        choices=("json", "md", "zip"),
        default="json",
        help="zip: in the layout of an OpenHands server's download (meta.json, one file per event); with --remote, the server's own",
    )
    export.add_argument("-o", "--output", type=Path, metavar="FILE", help="write to FILE instead of stdout")

    imports = commands.add_parser("import", help="create a conversation from an OpenHands trajectory JSON")
    imports.add_argument("file", help="a trajectory file, or - for standard input")
    imports.add_argument("--json", action="store_true")

    config = commands.add_parser("config", help="show or change settings")
    config_commands = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    config_show = config_commands.add_parser("show", help="every setting (the API key masked)")
    config_show.add_argument("--json", action="store_true", help="print JSON: the settings and their overrides")
    get = config_commands.add_parser("get", help="one setting")
    get.add_argument("key", choices=SETTING_NAMES, metavar="KEY")
    config_set = config_commands.add_parser("set", help="change one setting ('' resets it)")
    config_set.add_argument("key", choices=SETTING_NAMES, metavar="KEY")
    config_set.add_argument("value")

    serve = commands.add_parser(
        "serve",
        help="run the server that owns this data directory's loops (in the foreground; status, stop)",
        description="Run the server that owns the data directory's store and agent loops, in the "
        "foreground. It listens on a unix socket in the data directory (mode 0600); with --host it "
        "also listens on TCP, where every request needs the bearer token it prints once.",
    )
    serve.add_argument("--host", help="also listen on TCP at this address (e.g. 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765, help="TCP port (default 8765)")
    serve.add_argument("--no-token", action="store_true", help="no bearer token on TCP (loopback addresses only)")
    serve.add_argument(
        "--exit-when-idle",
        metavar="SECONDS",
        default="0",
        help="exit after this long with no loop running, no client following and no request (default 0: never; "
        "a server the UI or run starts in the background uses $CONVTUI_SERVER_IDLE_SECONDS, default 1800)",
    )
    serve_commands = serve.add_subparsers(dest="serve_command", metavar="ACTION")
    serve_status = serve_commands.add_parser("status", help="whether a server runs, its process and its loops")
    serve_status.add_argument("--json", action="store_true")
    serve_commands.add_parser("stop", help="stop the server's loops cleanly, then the server")

    remote = commands.add_parser(
        "remote",
        help="OpenHands servers whose conversations convtui manages (add, list, remove, test)",
        description="An OpenHands server added here is used with --remote NAME. Its API key (sent as "
        "X-Session-API-Key) is read from the environment variable --api-key-env names, or, with "
        "--api-key-stdin, stored in the data directory's remotes.json (mode 0600); it is never printed.",
    )
    remote_commands = remote.add_subparsers(dest="remote_command", metavar="ACTION", required=True)
    remote_add = remote_commands.add_parser("add", help="add an OpenHands server")
    remote_add.add_argument("name", help="a short name: a-z, 0-9, - and _")
    remote_add.add_argument("url", help="the server's address, e.g. https://openhands.example.com")
    remote_add.add_argument("--api-key-env", metavar="VAR", help="read the API key from this environment variable")
    remote_add.add_argument("--api-key-stdin", action="store_true", help="read the API key from standard input and store it (0600)")
    remote_add.add_argument("--insecure", action="store_true", help="do not verify the server's TLS certificate (warns on every use)")
    remote_list = remote_commands.add_parser("list", help="the servers added, and where each one's API key comes from")
    remote_list.add_argument("--json", action="store_true")
    remote_remove = remote_commands.add_parser("remove", help="forget a server (its conversations stay on it)")
    remote_remove.add_argument("name")
    remote_test = remote_commands.add_parser("test", help="reach a server with its API key and count its conversations")
    remote_test.add_argument("name")

    doctor = commands.add_parser("doctor", help="check the data directory for damaged files")
    doctor.add_argument("--repair", action="store_true", help="move damaged files aside and recover")
    doctor.add_argument("--json", action="store_true")
    return parser


# -- output ------------------------------------------------------------------------


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def _info_json(info: ConversationInfo) -> dict[str, Any]:
    return info.model_dump(mode="json")


def _repository_label(info: ConversationInfo) -> str:
    if not info.selected_repository:
        return ""
    return info.selected_repository + (f"@{info.selected_branch}" if info.selected_branch else "")


def _print_table(results: list[ConversationInfo]) -> None:
    width = shutil.get_terminal_size((100, 24)).columns
    rows = [
        (
            info.conversation_id[:8],
            info.status.value,
            relative_time(info.last_updated_at),
            one_line(info.title),
            one_line(_repository_label(info)),
        )
        for info in results
    ]
    header = ("ID", "STATUS", "UPDATED", "TITLE", "REPOSITORY")
    fixed = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    repository_width = min(30, max(len(row[4]) for row in [header, *rows]))
    title_width = max(10, width - sum(fixed) - repository_width - 8)
    for row in [header, *rows]:
        title = row[3] if len(row[3]) <= title_width else row[3][: title_width - 1] + "…"
        repository = row[4] if len(row[4]) <= repository_width else row[4][: repository_width - 1] + "…"
        line = f"{row[0]:<{fixed[0]}}  {row[1]:<{fixed[1]}}  {row[2]:<{fixed[2]}}  {title:<{title_width}}  {repository}"
        print(line.rstrip())


def _print_info(info: ConversationInfo) -> None:
    fields = [
        ("title", one_line(info.title)),
        ("id", info.conversation_id),
        ("status", info.status.value),
        ("runtime", info.runtime_status.value if info.runtime_status else "-"),
        ("agent", info.agent_state.value if info.agent_state else "-"),
        ("repository", one_line(_repository_label(info)) or "-"),
        ("trigger", info.trigger.value if info.trigger else "-"),
        ("owner", info.user_id or "-"),
        ("created", f"{info.created_at.isoformat(timespec='seconds')} ({relative_time(info.created_at)})"),
        ("updated", f"{info.last_updated_at.isoformat(timespec='seconds')} ({relative_time(info.last_updated_at)})"),
        ("model", info.llm_model or "-"),
        ("cost", format_cost(info.accumulated_cost)),
        (
            "tokens",
            f"{format_tokens(info.total_tokens)} ({info.prompt_tokens} prompt, {info.completion_tokens} completion)",
        ),
        ("pull requests", ", ".join(f"#{n}" for n in info.pr_number) or "-"),
        ("archived", "yes" if info.archived else "no"),
    ]
    for name, value in fields:
        print(f"{name + ':':<15}{value}")


def describe_event(event: EventDict) -> str:
    """One line per event: `12 agent   run: ls -la`."""
    args = event.get("args") or {}
    kind = event_kind(event)
    if event.get("action"):
        detail = args.get("command") or args.get("path") or event.get("message") or args.get("content") or args.get("thought") or ""
        if kind == "edit" and args.get("path"):
            detail = f"{args.get('command', 'edit')} {args['path']}"
    else:
        detail = event.get("content") or event.get("message") or ""
        if exit_code_of(event) is not None:
            detail = f"[exit {exit_code_of(event)}] {detail}"
    marker = "→" if event.get("action") else "←"
    return f"{event.get('id', '?'):>4} {event.get('source', '?'):<11} {marker} {kind}: {one_line(str(detail), 200)}"


# -- commands ----------------------------------------------------------------------


async def cmd_list(backend: Backend, arguments: argparse.Namespace) -> int:
    result = await backend.search(
        page_id=arguments.page,
        limit=arguments.limit,
        selected_repository=arguments.repo,
        conversation_trigger=arguments.trigger,
        status=arguments.status,
        query=arguments.query,
        archived=True if arguments.archived else False,
        all_ages=arguments.all,
        event_words=arguments.text,
        event_path=arguments.file,
        event_command=arguments.cmd,
    )
    if arguments.json:
        _print_json({"results": [_info_json(i) for i in result.results], "next_page_id": result.next_page_id})
        return EXIT_OK
    if not result.results:
        hint = "" if arguments.all else " (older ones: --all)"
        print(f"No conversations{hint}. Create one with: convtui new \"your task\"")
        return EXIT_OK
    _print_table(result.results)
    if result.next_page_id:
        remote = f"--remote {arguments.remote} " if arguments.remote else ""
        print(f"more: convtui {remote}list --page {result.next_page_id}")
    return EXIT_OK


async def cmd_inbox(backend: Backend, arguments: argparse.Namespace) -> int:
    from .backend.inbox import KIND_WORDS, InboxKind
    from .formatting import format_duration

    items = await backend.inbox()
    if arguments.json:
        _print_json([item.model_dump(mode="json") for item in items])
        return EXIT_OK
    if not items:
        print("nothing waits for you")
        return EXIT_OK
    now = datetime.now(timezone.utc)
    for item in items:
        waited = format_duration((now - item.since).total_seconds())
        print(f"{item.conversation_id[:8]}  {item.kind.value:<8}  {waited:>7}  {one_line(item.conversation.title, 60)}")
        if item.kind is InboxKind.APPROVE:
            what = describe_event(item.action) if item.action else "an action (its loop runs in another process)"
        else:
            what = item.message or KIND_WORDS[item.kind]
        print(f"{'':10}{one_line(what, 110)}")
    return EXIT_OK


async def cmd_watch(backend: Backend, arguments: argparse.Namespace) -> int:
    """One line per conversation that starts waiting, finishes or fails, as
    the UI alerts; on a terminal its bell and notifications too (never
    escapes into a pipe or a file). With --remote, the OpenHands server's
    conversations (asked every few seconds), alerted as this machine's
    settings say."""
    from .backend.alerts import ALERT_KINDS, AlertGate, parse_kinds, terminal_alert
    from .backend.interface import LocalBackend
    from .backend.update_journal import StreamReset
    from .backend.updates import StatusChanged

    if isinstance(backend, LocalBackend):
        raise InvalidInput("watch follows the loops of the convtui server: without one (--no-server, or server off) there is nothing to watch")
    settings = await backend.load_settings()  # (--remote: this machine's, which say how to alert)
    try:
        kinds = parse_kinds(arguments.on, ALERT_KINDS, "kind") if arguments.on is not None else settings.alert_kinds
    except ValueError as error:
        raise InvalidInput(f"--on: {error}") from None
    methods = settings.alert_methods if sys.stdout.isatty() else ()
    gate = AlertGate(kinds)
    where = f" on {arguments.remote}" if arguments.remote is not None else ""
    print(f"watching{where} for {', '.join(kinds) or 'nothing'} (Ctrl-C ends)", file=sys.stderr, flush=True)
    try:
        async for update in backend.updates():
            if isinstance(update, StreamReset) or not isinstance(update, StatusChanged):
                continue
            kind = gate.take(update)
            if kind is None:
                continue
            alert = await _alert_for(backend, update, kind)
            stamp = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S")
            print(f"{stamp}  {kind:<8}  {update.conversation_id[:8]}  {alert.what}", flush=True)
            if methods:
                sys.stdout.write(terminal_alert(alert, methods, in_tmux=bool(os.environ.get("TMUX"))))
                sys.stdout.flush()
            if arguments.exec_command:
                await _run_alert_command(arguments.exec_command, alert)
    except asyncio.CancelledError:  # Ctrl-C
        return 130
    return EXIT_OK


async def _alert_for(backend: Backend, update: Any, kind: str) -> Any:
    from .backend.alerts import Alert, alert_detail

    try:
        title = (await backend.get(update.conversation_id)).title
        pending = await backend.pending_action(update.conversation_id)
    except ConvtuiError:
        title, pending = update.conversation_id[:8], None
    return Alert(kind, update.conversation_id, title, alert_detail(update, kind, pending))


async def _run_alert_command(command: str, alert: Any) -> None:
    """`command` through sh, the alert in its environment (never in the
    command line: a title cannot inject anything). Its output is ours."""
    environment = {
        **os.environ,
        "CONVTUI_ALERT_KIND": alert.kind,
        "CONVTUI_CONVERSATION_ID": alert.conversation_id,
        "CONVTUI_TITLE": alert.title,
        "CONVTUI_DETAIL": alert.detail,
    }
    try:
        process = await asyncio.create_subprocess_shell(command, env=environment)
        status = await process.wait()
    except OSError as error:
        print(f"convtui: --exec: {one_line(describe_os_error(error, 'run the command'))}", file=sys.stderr)
        return
    if status != 0:
        print(f"convtui: --exec: the command ended with status {status}", file=sys.stderr, flush=True)


async def cmd_dismiss(backend: Backend, arguments: argparse.Namespace) -> int:
    for conversation_id in arguments.ids:
        info = await backend.dismiss(conversation_id)
        print(f"dismissed {info.conversation_id[:8]}: {one_line(info.title, 60)}")
    return EXIT_OK


async def cmd_exp_config(backend: Backend, arguments: argparse.Namespace) -> int:
    from .backend.settings import experiment_values

    try:
        body = orjson.loads(_read_input_file(arguments.file))
    except orjson.JSONDecodeError as error:
        raise InvalidInput(f"{arguments.file}: not JSON ({error})") from None
    if not isinstance(body, dict) or set(body) - {"config"} or not isinstance(body.get("config", {}), dict | None):
        raise InvalidInput(f'{arguments.file}: expected {{"config": {{"setting": "value", ...}}}}')
    config = {str(name): str(value) for name, value in (body.get("config") or {}).items()}
    experiment_values(config)  # one line naming a key that is not such a setting, or a bad value
    full_id = await backend.resolve(arguments.id)
    if not await backend.set_experiment_config(full_id, {"config": config}):
        raise InvalidInput(f"{full_id[:8]} already has an experiment config (it is set once); nothing was changed")
    print(f"experiment config set for {full_id[:8]}: {', '.join(config) or 'nothing'}; it applies from its loop's next start")
    return EXIT_OK


async def cmd_processes(backend: Backend, arguments: argparse.Namespace) -> int:
    if arguments.stop:
        stopped = await backend.stop_processes(arguments.id)
        print(f"stopped {stopped} process{'es' if stopped != 1 else ''}")
        return EXIT_OK
    for command in await backend.processes(arguments.id):
        print(inert(one_line(command, 500)))
    return EXIT_OK


async def cmd_show(backend: Backend, arguments: argparse.Namespace) -> int:
    info = await backend.get(arguments.id)
    events = await backend.search_events(info.conversation_id) if arguments.events else None
    workspace = await backend.workspace(info.conversation_id)
    if arguments.json:
        document = {**_info_json(info), "workspace": workspace}
        if events is not None:
            document["events"] = events
        _print_json(document)
        return EXIT_OK
    _print_info(info)
    print(f"{'workspace:':<15}{one_line(workspace)}")
    if events is not None:
        print()
        for event in events:
            print(describe_event(event))
    return EXIT_OK


def _read_input_file(path: str | Path) -> bytes:
    if str(path) == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise InvalidInput(describe_os_error(error, "read")) from None


async def cmd_new(backend: Backend, arguments: argparse.Namespace) -> int:
    fields: dict[str, Any] = {"trigger": ConversationTrigger.CLI}
    for field, value in (
        ("initial_user_msg", arguments.message),
        ("repository", arguments.repo),
        ("selected_branch", arguments.branch),
        ("conversation_instructions", arguments.instructions),
    ):
        if value is not None:
            fields[field] = value
    if arguments.replay is not None:
        fields["replay_json"] = _read_input_file(arguments.replay).decode("utf-8", errors="replace")
    if arguments.images:
        fields["image_urls"] = arguments.images
    if arguments.git_provider:
        fields["git_provider"] = arguments.git_provider
    if arguments.trigger:
        fields["trigger"] = arguments.trigger
    if arguments.suggested_task:
        task_type, repo, number, title = arguments.suggested_task
        if not number.isdigit():
            raise InvalidInput(f"--suggested-task NUMBER must be an issue or request number, not {number!r}")
        fields["suggested_task"] = {
            "task_type": task_type.upper(), "repo": repo, "issue_number": int(number), "title": title,
            "git_provider": arguments.git_provider,
        }  # fmt: skip
    if arguments.create_microagent:
        fields["create_microagent"] = {"repo": arguments.create_microagent, "git_provider": arguments.git_provider}
    try:
        request = NewConversationRequest.model_validate(fields)
    except ValueError as error:
        from .backend.errors import first_validation_error

        raise InvalidInput(first_validation_error(error)) from None
    if arguments.start and arguments.remote is None and request.replay_json is None and not (await backend.load_settings()).llm_model:
        # As the reference answers 400: refused before anything is created.
        raise MissingSettings(
            "--start needs a model and none is configured: set llm_model "
            "(convtui config set llm_model PROVIDER/MODEL); nothing was created"
        )
    response = await backend.new_conversation(request)
    _print_response(response, arguments.json, "created")
    if not arguments.start:
        return EXIT_OK
    if arguments.remote is not None:
        return await _run_on_openhands(backend, response.conversation_id, arguments, quiet=arguments.json)
    return await _run_loop(backend, response.conversation_id, arguments, quiet=arguments.json)


def _print_response(response: Any, as_json: bool, verb: str) -> int:
    if as_json:
        _print_json(
            {
                "status": response.status,
                "conversation_id": response.conversation_id,
                "conversation_status": response.conversation_status.value if response.conversation_status else None,
            }
        )
    else:
        print(f"{verb} {response.conversation_id}")
    return EXIT_OK


async def cmd_rename(backend: Backend, arguments: argparse.Namespace) -> int:
    info = await backend.rename(arguments.id, arguments.title)
    print(f"renamed {info.conversation_id[:8]}: {one_line(info.title)}")
    return EXIT_OK


async def _each(ids: list[str], action: Callable[[str], Awaitable[str]]) -> int:
    """Run `action` on every id; report each failure on one line and go on."""
    failed = 0
    for conversation_id in ids:
        try:
            print(await action(conversation_id))
        except ConvtuiError as error:
            message = one_line(str(error))
            # Most errors name the id already ("'nope' is not a conversation id").
            subject = "" if conversation_id in message else f"{one_line(conversation_id, 80)}: "
            print(f"convtui: {subject}{message}", file=sys.stderr)
            failed += 1
    return EXIT_FAILED if failed else EXIT_OK


def _confirmed(question: str, doing: str) -> bool:
    """Ask `question` [y/N] at the terminal; without one, refuse to `doing`
    (InvalidInput: --yes is how a script says yes)."""
    if not sys.stdin.isatty():
        raise InvalidInput(f"refusing to {doing} without --yes when not at a terminal")
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


async def cmd_delete(backend: Backend, arguments: argparse.Namespace) -> int:
    """A running loop (in the server or another convtui) is stopped first."""
    full_ids = []
    for given in arguments.ids:
        full_ids.append((await backend.get(given)).conversation_id)
    question = f"Delete {len(full_ids)} conversation(s) with their events and workspaces?"
    if not arguments.yes and not _confirmed(question, "delete"):
        print("nothing deleted")
        return EXIT_FAILED

    async def delete(conversation_id: str) -> str:
        await backend.delete(conversation_id)
        return f"deleted {conversation_id}"

    return await _each(full_ids, delete)


async def cmd_archive(backend: Backend, arguments: argparse.Namespace) -> int:
    """Archiving a running conversation stops its loop (wherever it runs) first."""
    archived = arguments.command == "archive"

    async def change(conversation_id: str) -> str:
        info = await backend.get(conversation_id)
        if info.archived == archived:
            raise InvalidInput(f"{info.conversation_id} is {'already' if archived else 'not'} archived")
        info, stopped = await backend.change_archived(info.conversation_id, archived)
        return f"{arguments.command}d {info.conversation_id}" + (f": {stopped}" if stopped else "")

    return await _each(arguments.ids, change)


async def cmd_trash(backend: Backend, arguments: argparse.Namespace) -> int:
    action = arguments.trash_command or "list"
    if action == "restore":

        async def restore(conversation_id: str) -> str:
            info = await backend.restore(conversation_id)
            return f"restored {info.conversation_id} {one_line(info.title, 60)}"

        return await _each(arguments.ids, restore)
    trashed = await backend.list_trash()
    if action == "empty":
        count = len(arguments.ids) if arguments.ids else len(trashed)
        if count == 0:
            print("the trash is empty")
            return EXIT_OK
        if not arguments.yes and not _confirmed(f"Delete {count} trashed conversation(s) for good?", "empty the trash"):
            print("nothing deleted")
            return EXIT_OK
        removed = await backend.empty_trash(arguments.ids or None)
        print(f"deleted {removed} conversation(s) for good")
        return EXIT_OK
    if getattr(arguments, "json", False):
        _print_json(
            [
                {"conversation_id": t.conversation_id, "title": t.title, "trashed_at": t.trashed_at}
                for t in trashed
            ]
        )
        return EXIT_OK
    if not trashed:
        print("The trash is empty.")
        return EXIT_OK
    from datetime import datetime

    for item in trashed:
        when = relative_time(datetime.fromisoformat(item.trashed_at))
        print(f"{item.conversation_id[:8]}  {when:>10}  {one_line(item.title, 70)}")
    print("restore: convtui trash restore ID   empty: convtui trash empty [ID...]")
    return EXIT_OK


async def cmd_export(backend: Backend, arguments: argparse.Namespace) -> int:
    if arguments.format == "zip" and arguments.output is None and sys.stdout.isatty():
        raise InvalidInput("a zip is not for a terminal: give -o FILE, or redirect the output")
    if arguments.format == "md":
        data = (await backend.export_markdown(arguments.id)).encode()
    elif arguments.format == "zip":
        data = await backend.export_zip(arguments.id)
    else:
        data = await backend.export_json(arguments.id)
    if arguments.format == "zip" and arguments.output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return EXIT_OK
    if arguments.output is None:
        sys.stdout.buffer.write(data if data.endswith(b"\n") else data + b"\n")
        sys.stdout.flush()
        return EXIT_OK
    from .backend.interface import save_file

    output = arguments.output.expanduser()
    if output.is_dir():
        raise InvalidInput(f"{output} is a directory")
    save_file(output, data)
    print(f"wrote {output}", file=sys.stderr)
    return EXIT_OK


async def cmd_import(backend: Backend, arguments: argparse.Namespace) -> int:
    response = await backend.import_trajectory(_read_input_file(arguments.file))
    return _print_response(response, arguments.json, "imported")


async def cmd_config(backend: Backend, arguments: argparse.Namespace) -> int:
    action = arguments.config_command
    if action == "set":
        settings = await backend.update_settings({arguments.key: parse_setting(arguments.key, arguments.value)})
        print(f"{arguments.key} = {display_value(arguments.key, settings)}")
        return EXIT_OK
    settings = await backend.load_settings()
    if action == "get":
        print(display_value(arguments.key, settings))
        return EXIT_OK
    overridden = await backend.settings_overrides()
    if arguments.json:
        _print_json({"settings": masked(settings), "environment_overrides": overridden})
        return EXIT_OK
    for name in SETTING_NAMES:
        source = f"   (from ${overridden[name]})" if name in overridden else ""
        print(f"{name} = {display_value(name, settings)}{source}")
    return EXIT_OK


def _data_root(arguments: argparse.Namespace) -> Path:
    return (arguments.data_dir or default_data_dir()).expanduser()


def cmd_remote(arguments: argparse.Namespace) -> int:
    from .backend.remotes import RemotesStore

    store = RemotesStore(_data_root(arguments))
    action = arguments.remote_command
    if action == "add":
        key = None
        if arguments.api_key_stdin:
            key = sys.stdin.readline().strip()
            if not key:
                raise InvalidInput("no API key on standard input")
        remote = store.add(arguments.name, arguments.url, arguments.api_key_env, key, arguments.insecure)
        print(f"added {remote.name}: {remote.url} (API key: {remote.key_source()}); use it with: convtui --remote {remote.name}")
    elif action == "remove":
        print(f"removed {store.remove(arguments.name).name}")
    elif action == "list":
        remotes = list(store.load().values())
        if arguments.json:
            _print_json([{"name": r.name, "url": r.url, "api_key": r.key_source(), "insecure": r.insecure} for r in remotes])
        elif not remotes:
            print("No remotes. Add one with: convtui remote add NAME URL [--api-key-env VAR]")
        else:
            for remote in remotes:
                insecure = "  (TLS not verified)" if remote.insecure else ""
                print(f"{remote.name:<16} {remote.url}  API key: {remote.key_source()}{insecure}")
    else:
        from .backend.connect import reach_remote

        print(asyncio.run(reach_remote(store.root, arguments.name, lambda why: print(f"convtui: {why}", file=sys.stderr))))
    return EXIT_OK


def cmd_doctor(arguments: argparse.Namespace) -> int:
    from .backend.doctor import report_json, run_doctor

    root = _data_root(arguments)
    report = run_doctor(root, repair=arguments.repair)
    if arguments.json:
        sys.stdout.write(report_json(report).decode() + "\n")
    else:
        print(f"{root}: {report.conversations} conversations in the store")
        for finding in report.findings:
            state = f" -> {finding.repaired}" if finding.repaired else ""
            print(f"  {inert(str(finding.path))}: {finding.problem}{state}")
        if report.sandbox is not None:
            print(f"commands: {report.sandbox.label}")
        if report.indexed_events is not None:
            print(f"search index rebuilt from the event logs: {report.indexed_events:,} events")
        if report.healthy:
            print("no problems need attention")
        elif not arguments.repair:
            print("run `convtui doctor --repair` to move damaged files aside and recover")
    return EXIT_OK if report.healthy else EXIT_FAILED


def cmd_serve(arguments: argparse.Namespace) -> int:
    from .backend import server

    root = _data_root(arguments)
    if arguments.serve_command == "status":
        status = server.server_status(root)
        if arguments.json:
            _print_json(status)
        elif status is None:
            print(f"no server runs for {root}")
        else:
            where = status["socket"] + (f" and http://{status['host']}:{status['port']}" if status.get("host") else "")
            running = len(status["running"])
            print(f"server {status['pid']} (convtui {status['version']}) on {where}; {running} loop(s) running")
        return EXIT_OK if status is not None else EXIT_FAILED
    if arguments.serve_command == "stop":
        stopped = server.stop_server(root)
        if stopped is None:
            print(f"no server runs for {root}")
            return EXIT_OK
        count = len(stopped.get("stopping", []))
        print(f"stopped server {stopped['pid']}" + (f" and {count} loop(s)" if count else ""))
        return EXIT_OK
    options = server.ServeOptions(
        host=arguments.host,
        port=arguments.port,
        token=not arguments.no_token,
        exit_when_idle=server.idle_seconds(arguments.exit_when_idle),
    )
    logging.getLogger().setLevel(logging.INFO)
    try:
        asyncio.run(server.serve(root, options, announce=lambda line: print(line, flush=True)))
    except server.ServerRunning as error:
        print(f"convtui: {error}", file=sys.stderr)
        return EXIT_OK  # the server asked for runs: what a racing start wants
    return EXIT_OK


async def _run_loop(backend: Backend, conversation_id: str, arguments: argparse.Namespace, quiet: bool = False) -> int:
    """Run a loop until the agent waits for the user, finishes, fails or is
    stopped, printing its events and asking for approvals here. Ctrl-C
    leaves a server's loop running (--stop-on-exit stops it); a loop in
    this process always stops with it."""
    from .backend.client import RemoteBackend
    from .backend.updates import EventAdded, StatusChanged

    approve_all = arguments.yes
    full_id = await backend.resolve(conversation_id)
    interactive = sys.stdin.isatty() and not approve_all
    final: StatusChanged | None = None
    position = await backend.position()
    sandbox = await backend.sandbox_status()
    if not sandbox.sandboxed:
        print(f"convtui: commands are NOT sandboxed: {sandbox.description}", file=sys.stderr, flush=True)
    status = await backend.start(full_id, confirm=False if approve_all else None, until_idle=True)
    shown_up_to = -1  # the newest event printed: one arriving on the stream too is not printed twice
    try:
        if status.value == "RUNNING" and isinstance(backend, RemoteBackend):
            if not quiet:
                history = await backend.search_events(full_id, reverse=True, limit=ATTACH_HISTORY)
                print(f"-- attached to the server's loop of {full_id[:8]} (Ctrl-C detaches); its last events:", flush=True)
                for event in reversed(history):
                    print(describe_event(event), flush=True)
                shown_up_to = max((event.get("id", -1) for event in history), default=-1)
            if not await _decide_here(backend, full_id, interactive, approve_all):  # it may be waiting already
                return EXIT_FAILED
        async for update in backend.updates(position):
            if getattr(update, "conversation_id", None) != full_id:
                continue
            if isinstance(update, EventAdded) and not quiet and update.event.get("id", -1) > shown_up_to:
                print(describe_event(update.event), flush=True)
            if not isinstance(update, StatusChanged):
                continue
            final = update
            if update.status.value in ("STOPPED", "ERROR"):
                break
            if update.agent_state is None or update.agent_state.value != "awaiting_user_confirmation":
                continue
            if not await _decide_here(backend, full_id, interactive, approve_all):
                return EXIT_FAILED
    except asyncio.CancelledError:  # Ctrl-C
        if isinstance(backend, RemoteBackend) and not arguments.stop_on_exit:
            print(f"\n-- detached: the loop keeps running in the server (convtui stop {full_id[:8]} ends it)")
        else:
            await backend.stop(full_id)
            print(f"\n-- stopped {full_id[:8]}")
        return 130
    await backend.wait(full_id)  # a loop here records how it ended before this process ends it
    if final is not None and final.status.value == "ERROR":
        print(f"convtui: {one_line(final.message or 'the loop failed')}", file=sys.stderr)
        return EXIT_FAILED
    if final is not None and not quiet:
        state = final.agent_state.value if final.agent_state else final.status.value
        reason = f": {one_line(final.message)}" if final.message and final.message != state else ""
        print(f"-- {state}{reason}")
    return EXIT_OK


async def _decide_here(backend: Backend, full_id: str, interactive: bool, approve_all: bool) -> bool:
    """Answer the action awaiting approval, if one does: yes with --yes (a
    loop attached to asks even so), else ask at the terminal. False when
    none can be asked (no terminal, no --yes): the loop is stopped."""
    action = await backend.pending_action(full_id)
    if action is None:
        return True
    if approve_all:
        await backend.approve(full_id)
        return True
    if not interactive:
        print("convtui: an action needs approval: run in a terminal, or pass --yes", file=sys.stderr)
        await backend.stop(full_id)
        return False
    for line in await _approval_details(backend, full_id):
        print(line)
    answer = await asyncio.to_thread(input, f"approve {one_line(describe_event(action), 120)}? [y/n/a(lways)] ")
    choice = answer.strip().lower()[:1]
    if choice in ("y", "a"):
        await backend.approve(full_id, always=choice == "a")
    else:
        await backend.reject(full_id)
    return True


ATTACH_HISTORY = 10  # events shown when `run` attaches to a loop already running
RUN_START_SECONDS = 180.0  # `run --remote` waits this long for a sandbox to come up (or its state to be known)
APPROVAL_MAX_LINES = 40
APPROVAL_MAX_WIDTH = 200


async def _approval_details(backend: Backend, conversation_id: str) -> list[str]:
    """What a file write asking for approval would do: the new file's
    content, or a unified diff of the change. Inert, at most
    APPROVAL_MAX_LINES lines of at most APPROVAL_MAX_WIDTH characters, with a
    note of what was cut. Nothing for other actions."""
    try:
        diff = await backend.pending_diff(conversation_id)
    except ConvtuiError as error:
        return [f"  (no preview: {one_line(str(error), APPROVAL_MAX_WIDTH)})"]
    if diff is None:
        return []
    shown = []
    for line in diff[:APPROVAL_MAX_LINES]:
        line = inert(line.expandtabs(4), keep_newlines=False)
        if len(line) > APPROVAL_MAX_WIDTH:
            line = f"{line[:APPROVAL_MAX_WIDTH]}… [{len(line) - APPROVAL_MAX_WIDTH:,} more characters]"
        shown.append(f"  {line}")
    if len(diff) > APPROVAL_MAX_LINES:
        shown.append(f"  [... {len(diff) - APPROVAL_MAX_LINES:,} more lines of the diff not shown]")
    if not diff:
        shown.append("  (the file would not change)")
    return shown


async def cmd_run(backend: Backend, arguments: argparse.Namespace) -> int:
    if arguments.remote is not None:
        return await _run_on_openhands(backend, arguments.id, arguments)
    return await _run_loop(backend, arguments.id, arguments)


async def _run_on_openhands(backend: Any, conversation_id: str, arguments: argparse.Namespace, quiet: bool = False) -> int:
    """`run` on an OpenHands server: resume the conversation's sandbox if it
    is paused, then show its agent's events as the server has them (asked
    every 2 s) and answer its approvals here, until the agent waits for the
    user, finishes or fails. Ctrl-C leaves it running there (--stop-on-exit
    pauses it)."""
    from .backend.models import AgentState, ConversationStatus

    full_id = await backend.resolve(conversation_id)
    interactive = sys.stdin.isatty() and not arguments.yes
    resumed = await backend.start(full_id) is ConversationStatus.STARTING
    if resumed and not quiet:
        print(f"-- resuming the sandbox of {full_id[:8]} on {arguments.remote} (Ctrl-C detaches)", flush=True)
    working = (AgentState.RUNNING, AgentState.AWAITING_USER_CONFIRMATION)
    deadline = asyncio.get_running_loop().time() + RUN_START_SECONDS
    first = True
    info = None
    try:
        async for events, info in backend.run_updates(full_id, ATTACH_HISTORY):
            if first and events and not quiet:
                detaches = "" if resumed else " (Ctrl-C detaches)"
                print(f"-- {full_id[:8]} on {arguments.remote}{detaches}; its last events:", flush=True)
            first = False
            for event in events if not quiet else ():
                print(describe_event(event), flush=True)
            if info.status is ConversationStatus.ERROR:
                break
            if info.status is ConversationStatus.RUNNING and info.agent_state is not None:
                resumed = False
                if info.agent_state is AgentState.AWAITING_USER_CONFIRMATION:
                    if not await _decide_here(backend, full_id, interactive, arguments.yes):
                        return EXIT_FAILED
                elif info.agent_state not in working:
                    break
            elif info.status is ConversationStatus.STOPPED and not resumed:
                break  # paused there meanwhile (a sandbox resuming is paused, then starting, before it runs)
            elif asyncio.get_running_loop().time() > deadline:
                print(f"convtui: the conversation's sandbox did not come up within {RUN_START_SECONDS:g} s", file=sys.stderr)
                return EXIT_FAILED
    except asyncio.CancelledError:  # Ctrl-C
        if arguments.stop_on_exit:
            await backend.stop(full_id)
            print(f"\n-- paused the sandbox of {full_id[:8]}")
        else:
            print(f"\n-- detached: the agent keeps running on {arguments.remote} (convtui --remote {arguments.remote} stop {full_id[:8]} pauses it)")
        return 130
    if info is None:
        return EXIT_OK
    state = info.agent_state.value if info.agent_state else info.status.value
    if info.status is ConversationStatus.ERROR or info.agent_state is AgentState.ERROR:
        print(f"convtui: {one_line(info.status_message or state)}", file=sys.stderr)
        return EXIT_FAILED
    reason = f": {one_line(info.status_message)}" if info.status_message and info.status_message != state else ""
    if not quiet:
        print(f"-- {state}{reason}")
    return EXIT_OK


async def cmd_stop(backend: Backend, arguments: argparse.Namespace) -> int:
    response = await backend.stop_explained(arguments.id)  # says which process it stopped
    print(f"{response.conversation_id[:8]}: {response.message}")
    return EXIT_OK


async def cmd_send(backend: Backend, arguments: argparse.Namespace) -> int:
    event = await backend.send_message(arguments.id, arguments.message)
    print(f"sent as event {event['id']}")
    return EXIT_OK


async def cmd_remember(backend: Backend, arguments: argparse.Namespace) -> int:
    print(inert(await backend.remember_prompt(arguments.id, arguments.event_id)))
    return EXIT_OK


COMMANDS: dict[str, Callable[[Backend, argparse.Namespace], Awaitable[int]]] = {
    "list": cmd_list,
    "show": cmd_show,
    "inbox": cmd_inbox,
    "dismiss": cmd_dismiss,
    "processes": cmd_processes,
    "exp-config": cmd_exp_config,
    "watch": cmd_watch,
    "new": cmd_new,
    "rename": cmd_rename,
    "delete": cmd_delete,
    "archive": cmd_archive,
    "unarchive": cmd_archive,
    "trash": cmd_trash,
    "export": cmd_export,
    "import": cmd_import,
    "config": cmd_config,
    "run": cmd_run,
    "stop": cmd_stop,
    "send": cmd_send,
    "remember": cmd_remember,
}


async def _run(arguments: argparse.Namespace) -> int:
    """A conversation command, through the data directory's server when one
    runs (it owns the data directory) or else in this process. Only a command
    that runs a loop starts a server (unless --no-server or the `server`
    setting says not to)."""
    from .backend.connect import open_backend

    root = _data_root(arguments)
    if arguments.remote is not None:
        return await _run_remote(root, arguments)
    # (watch follows the server's loops: it starts one like `run`, and keeps it from idling out)
    runs_a_loop = arguments.command in ("run", "watch") or (arguments.command == "new" and arguments.start)
    backend = await open_backend(root, no_server=arguments.no_server, start=runs_a_loop)
    try:
        return await COMMANDS[arguments.command](backend, arguments)
    finally:
        await backend.close()


# What a command needs that only convtui's own data directory has.
LOCAL_ONLY = {
    "config": "the server's settings are changed in its own web UI",
    "import": "",
    "trash": "",
    "dismiss": "",
}


async def _run_remote(root: Path, arguments: argparse.Namespace) -> int:
    """A conversation command against an OpenHands server (--remote NAME)."""
    from .backend.connect import open_remote_backend
    from .backend.openhands_backend import unsupported

    if arguments.command in LOCAL_ONLY:
        raise unsupported(f"`{arguments.command}`", LOCAL_ONLY[arguments.command])
    backend = await open_remote_backend(root, arguments.remote, lambda why: print(f"convtui: {why}", file=sys.stderr))
    try:
        return await COMMANDS[arguments.command](backend, arguments)
    finally:
        await backend.close()


def run_ui(arguments: argparse.Namespace) -> int:
    """The full-screen UI (the data directory, or a seeded demo one)."""
    # Textual paints at most TEXTUAL_FPS frames a second; at its default 60 a
    # keystroke waits up to two frames (~35 ms) before it shows.
    os.environ.setdefault("TEXTUAL_FPS", "120")
    from .backend.collector import made_to_last

    with made_to_last():  # the app's modules live as long as the process
        from .app import ConvtuiApp

    if arguments.demo:
        from .demo import demo_app

        return demo_app(mouse=not arguments.no_mouse)
    from .termination import ends_cleanly_on_termination

    root = _data_root(arguments)
    with ends_cleanly_on_termination() as termination:  # loops stop, their commands die
        termination.app = ConvtuiApp(root, no_server=arguments.no_server, remote=arguments.remote)
        termination.app.run(mouse=not arguments.no_mouse and _mouse_setting(root))
    return termination.exit_code or EXIT_OK


def _mouse_setting(root: Path) -> bool:
    """The `mouse` setting; on when the settings cannot be read (the UI
    then says why)."""
    from .backend.data_dir import DataDirectory
    from .backend.settings import SettingsStore

    try:
        return SettingsStore(DataDirectory(root).settings).load_file().mouse
    except ConvtuiError:
        return True


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="convtui: warning: %(message)s")
    try:
        if arguments.remote is not None and arguments.command in ("serve", "doctor", "remote"):
            parser.error(f"--remote does not apply to `{arguments.command}`: it works on this machine's data directory")
        if arguments.command is None:
            return run_ui(arguments)
        if arguments.command == "doctor":
            return cmd_doctor(arguments)
        if arguments.command == "remote":
            return cmd_remote(arguments)
        if arguments.command == "serve":
            return cmd_serve(arguments)
        return asyncio.run(_run(arguments))
    except ConvtuiError as error:
        print(f"convtui: {one_line(str(error))}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("convtui: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except OSError as error:
        print(f"convtui: {one_line(describe_os_error(error, 'complete the operation'))}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as error:  # a bug: still one line, the details in a file
        return _report_internal_error(error, arguments.data_dir)


def _known_keys(data_dir: Path | None) -> Redactor:
    """A Redactor for every key this run may have seen: the settings' (file
    or environment) and the provider keys in the environment."""
    from .backend.data_dir import DataDirectory
    from .backend.redaction import Redactor, provider_keys_in_environment
    from .backend.settings import SettingsStore

    try:
        api_key = SettingsStore(DataDirectory((data_dir or default_data_dir()).expanduser()).settings).load().api_key()
    except Exception:  # damaged or unreadable: the environment's keys still count
        api_key = None
    return Redactor([api_key, *provider_keys_in_environment()])


def _report_internal_error(error: Exception, data_dir: Path | None) -> int:
    import tempfile
    import traceback

    redact = _known_keys(data_dir)
    details = Path(tempfile.gettempdir()) / f"convtui-error-{os.getuid()}.log"
    try:
        # Private, and never through a link someone else planted in /tmp.
        fd = os.open(details, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(redact("".join(traceback.format_exception(error))))
        where = f" (details in {details})"
    except OSError:
        where = ""
    summary = one_line(redact(f"{type(error).__name__}: {error}"), 300)  # cut after: no half key
    print(f"convtui: internal error: {summary}{where}", file=sys.stderr)
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
