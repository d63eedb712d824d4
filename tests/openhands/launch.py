"""Runs a real OpenHands app server (openhands-ai from PyPI) on 127.0.0.1
for convtui's remote-backend tests: `python launch.py PORT`, with the
OpenHands environment the harness sets (RUNTIME=process, ...).

Run by the OpenHands Python, not convtui's. The server is OpenHands' own;
three things of this box are adapted, none of its routes:

- Containers: OpenHands takes /.dockerenv to mean its agent servers are
  reached at host.docker.internal. With RUNTIME=process they run beside it
  on localhost, and a container here has no such host name.
- The process sandbox reports an idle agent server as STARTING: psutil's
  "running" means on a CPU at that instant, and an idle server sleeps. Here
  a live process is RUNNING, a stopped one (paused) PAUSED, as its Docker
  runtime reports them.
- OpenHands always gives its agent the browser tool, which refuses to start
  without Chromium (and this box has none): it is left out."""

import sys

import psutil
import uvicorn
from openhands.app_server.app_conversation import live_status_app_conversation_service as conversations
from openhands.app_server.sandbox import process_sandbox_service as sandboxes
from openhands.app_server.sandbox.sandbox_models import SandboxStatus
from openhands.app_server.utils import docker_utils

docker_utils.is_running_in_docker = lambda: False


def _process_status(self, info):
    try:
        state = psutil.Process(info.pid).status()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return SandboxStatus.MISSING
    if state == psutil.STATUS_STOPPED:
        return SandboxStatus.PAUSED
    if state == psutil.STATUS_ZOMBIE:
        return SandboxStatus.MISSING
    return SandboxStatus.RUNNING


sandboxes.ProcessSandboxService._get_process_status = _process_status
_default_tools = conversations.get_default_tools
conversations.get_default_tools = lambda **options: _default_tools(**{**options, "enable_browser": False})

uvicorn.run("openhands.app_server.app:app", host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
