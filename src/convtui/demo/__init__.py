"""`convtui --demo`: a temporary data directory seeded with sample
conversations whose loops replay the shipped OpenHands trajectories, so the
product can be watched working without an API key."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from datetime import timedelta
from importlib import resources
from pathlib import Path

from ..backend.models import utc_now
from ..backend.service import ConversationService

TRAJECTORIES = ("basic.json", "basic_interactions.json")


def trajectory_text(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


async def seed(root: Path) -> list[str]:
    """Create the sample conversations; returns the ids of those to replay."""
    service = await ConversationService.open(root, user_id="demo")
    try:
        await service.update_settings({"confirmation_mode": False})
        replays = []
        for name in TRAJECTORIES:
            response = await service.new_conversation({"replay_json": trajectory_text(name)})
            replays.append(response.conversation_id)
        samples = [
            ("Refactor the settings loader", "acme/webapp", "main", 0.0, False),
            ("Investigate flaky CI on the payments service", "acme/payments", "ci-fix", 2.5, False),
            ("Write release notes for 2.4", None, None, 30.0, False),
            ("Old experiment: port to Rust", "acme/engine", "rust", 400.0, True),
        ]
        for title, repository, branch, hours_ago, archived in samples:
            fields = {"initial_user_msg": title, "trigger": "cli"}
            if repository:
                fields.update(repository=repository, selected_branch=branch)
            conversation_id = (await service.new_conversation(fields)).conversation_id
            await service.rename(conversation_id, title)
            if archived:
                await service.archive(conversation_id)
            moment = utc_now() - timedelta(hours=hours_ago)
            await service.update_metadata(conversation_id, last_updated_at=moment, created_at=moment)
        return replays
    finally:
        service.close()


def demo_app(mouse: bool = True) -> int:
    """Run the demo; its temporary directory is removed however it ends:
    q, a closed terminal (SIGHUP) or `kill` (SIGTERM)."""
    from ..app import ConvtuiApp
    from ..termination import ends_cleanly_on_termination

    with ends_cleanly_on_termination() as termination:
        root: Path | None = None
        try:
            root = Path(tempfile.mkdtemp(prefix="convtui-demo-"))
            termination.cleanups.append(lambda: shutil.rmtree(root, ignore_errors=True))
            replays = asyncio.run(seed(root))

            def start_replays(app: ConvtuiApp) -> None:
                app.backend.manager.replay_delay = 0.8

                async def start() -> None:
                    for conversation_id in replays:
                        await app.backend.manager.start(conversation_id)
                        await asyncio.sleep(0.5)

                app.run_worker(start())

            # Its loops live and die with it: nothing of a demo stays behind.
            termination.app = ConvtuiApp(root, on_ready=start_replays, no_server=True)
            termination.app.run(mouse=mouse)
        finally:
            termination.hold()
            if root is not None:
                shutil.rmtree(root, ignore_errors=True)
    return termination.exit_code or 0
