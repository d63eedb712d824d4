"""Stores COUNT conversations in a (stopped) OpenHands server's database
through its own SQLAppConversationInfoService: `python seed.py COUNT`, with
the server's environment (OH_PERSISTENCE_DIR). Run by the OpenHands Python.
Titles are "seeded 00000".., one minute apart, the newest last; every
fifth has a repository, and their sandboxes do not exist (MISSING)."""

import asyncio
import sys
from datetime import datetime, timedelta, timezone

from openhands.app_server.app_conversation.app_conversation_models import AppConversationInfo
from openhands.app_server.config import get_app_conversation_info_service, get_db_session
from openhands.app_server.services.injector import InjectorState
from openhands.app_server.user.specifiy_user_context import ADMIN, USER_CONTEXT_ATTR


async def main(count: int) -> None:
    state = InjectorState()
    setattr(state, USER_CONTEXT_ATTR, ADMIN)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    async with get_db_session(state), get_app_conversation_info_service(state) as service:
        for number in range(count):
            moment = start + timedelta(minutes=number)
            await service.save_app_conversation_info(
                AppConversationInfo(
                    created_by_user_id=None,
                    sandbox_id=f"seeded-sandbox-{number:05d}",
                    title=f"seeded {number:05d}",
                    selected_repository="org/repo" if number % 5 == 0 else None,
                    created_at=moment,
                    updated_at=moment,
                )
            )


asyncio.run(main(int(sys.argv[1])))
