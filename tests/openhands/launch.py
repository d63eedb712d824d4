"""Runs a real OpenHands app server (openhands-ai from PyPI) on 127.0.0.1
for convtui's remote-backend tests: `python launch.py PORT`, with the
OpenHands environment the harness sets (RUNTIME=process, ...).

The app is the one its users start, whichever this install has:
openhands.app_server.app (1.7 and later), else openhands.server.listen
(1.6: its V0 server, which serves the V1 routes too).

Run by the OpenHands Python, not convtui's. The server is OpenHands' own;
these things of this box are adapted, none of its routes:

- Containers: OpenHands takes /.dockerenv to mean its agent servers are
  reached at host.docker.internal. With RUNTIME=process they run beside it
  on localhost, and a container here has no such host name.
- The process sandbox reports an idle agent server as STARTING: psutil's
  "running" means on a CPU at that instant, and an idle server sleeps. Here
  a live process is RUNNING, a stopped one (paused) PAUSED, as its Docker
  runtime reports them.
- OpenHands always gives its agent the browser tool, which refuses to start
  without Chromium (and this box has none): it is left out.

And three things of 1.6 (1.11 has none of them), each patched only where
it is found:

- Its V0 server sets up a V0 runtime at start and knows none called
  "process": it is given "local", which its V1 routes take as "process"
  (the same process sandboxes). That runtime's dependency check (Jupyter, a
  tmux session, Chromium) is for V0 conversations, which the tests never
  start: skipped (SKIP_DEPENDENCY_CHECK=1).
- Its process sandbox pipes an agent server's output and never reads it:
  once the pipe's buffer is full the agent server blocks writing its logs,
  and conversations stop starting. The output goes to a file in the
  sandbox's directory instead, as 1.11 does ("to avoid pipe-buffer
  deadlocks", it says).
- Its process sandbox's working directory is "" (1.11: "."): the workspace
  is set up in no directory ("mkdir: missing operand"). It is "." here."""

import importlib.util
import inspect
import os
import subprocess
import sys
import types

if importlib.util.find_spec("openhands.app_server.app"):
    APP = "openhands.app_server.app:app"
else:
    APP = "openhands.server.listen:app"
    if os.environ.get("RUNTIME") == "process":
        os.environ["RUNTIME"] = "local"
        os.environ.setdefault("SKIP_DEPENDENCY_CHECK", "1")

import psutil
import uvicorn
from openhands.app_server.app_conversation import live_status_app_conversation_service as conversations
from openhands.app_server.sandbox import process_sandbox_service as sandboxes
from openhands.app_server.sandbox import process_sandbox_spec_service as sandbox_specs
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


def _popen_logging(command, **options):
    """subprocess.Popen, with piped output sent to a log file instead (1.6)."""
    if options.get("stdout") is not subprocess.PIPE:
        return subprocess.Popen(command, **options)
    with open(os.path.join(options.get("cwd") or ".", ".openhands-agent-server.log"), "ab") as log:
        return subprocess.Popen(command, **{**options, "stdout": log, "stderr": log})


if "subprocess.PIPE" in inspect.getsource(sandboxes.ProcessSandboxService._start_agent_process):
    sandboxes.subprocess = types.ModuleType("subprocess")
    sandboxes.subprocess.__dict__.update(vars(subprocess), Popen=_popen_logging)

if any(spec.working_dir == "" for spec in sandbox_specs.get_default_sandbox_specs()):
    _inject_specs = sandbox_specs.ProcessSandboxSpecServiceInjector.inject

    async def _inject_specs_with_a_directory(self, state, request=None):
        self.specs = [spec.model_copy(update={"working_dir": "."}) if spec.working_dir == "" else spec for spec in self.specs]
        async for service in _inject_specs(self, state, request):
            yield service

    sandbox_specs.ProcessSandboxSpecServiceInjector.inject = _inject_specs_with_a_directory

_default_tools = conversations.get_default_tools
conversations.get_default_tools = lambda **options: _default_tools(**{**options, "enable_browser": False})

uvicorn.run(APP, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
