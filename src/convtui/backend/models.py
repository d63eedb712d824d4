"""Typed data of convtui: conversation metadata, the states a loop can be in,
the requests the service accepts and the results it returns.

Field names follow the OpenHands conversation API so that exported JSON and
`convtui list --json` read the same as OpenHands' ConversationInfo.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from .errors import InvalidInput

CONVERSATION_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")


def id_prefix(raw: str) -> str:
    """A conversation id or prefix as typed, normalised (trimmed, lower
    case). Raises InvalidInput for anything that cannot start an id."""
    candidate = raw.strip().lower()
    if not candidate or len(candidate) > 32 or any(c not in "0123456789abcdef" for c in candidate):
        raise InvalidInput(f"{raw[:40]!r} is not a conversation id or id prefix")
    return candidate

TITLE_MAX_LENGTH = 200
REJECT_REASON_MAX = 2_000  # characters of the reason given with a rejection
MESSAGE_MAX_LENGTH = 200_000


class ConversationStatus(str, Enum):
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"
    ARCHIVED = "ARCHIVED"
    ERROR = "ERROR"


class RuntimeStatus(str, Enum):
    STARTING_RUNTIME = "STATUS$STARTING_RUNTIME"
    SETTING_UP_WORKSPACE = "STATUS$SETTING_UP_WORKSPACE"
    READY = "STATUS$READY"
    ERROR = "STATUS$ERROR"
    ERROR_LLM_AUTHENTICATION = "STATUS$ERROR_LLM_AUTHENTICATION"
    ERROR_LLM_SERVICE_UNAVAILABLE = "STATUS$ERROR_LLM_SERVICE_UNAVAILABLE"
    ERROR_LLM_INTERNAL_SERVER_ERROR = "STATUS$ERROR_LLM_INTERNAL_SERVER_ERROR"
    ERROR_LLM_OUT_OF_CREDITS = "STATUS$ERROR_LLM_OUT_OF_CREDITS"
    ERROR_LLM_CONTENT_POLICY_VIOLATION = "STATUS$ERROR_LLM_CONTENT_POLICY_VIOLATION"
    LLM_RETRY = "STATUS$LLM_RETRY"
    AGENT_RATE_LIMITED = "STATUS$AGENT_RATE_LIMITED"
    GIT_PROVIDER_AUTHENTICATION_ERROR = "STATUS$GIT_PROVIDER_AUTHENTICATION_ERROR"
    STOPPED = "STATUS$STOPPED"


class AgentState(str, Enum):
    LOADING = "loading"
    RUNNING = "running"
    AWAITING_USER_INPUT = "awaiting_user_input"
    AWAITING_USER_CONFIRMATION = "awaiting_user_confirmation"
    PAUSED = "paused"
    STOPPED = "stopped"
    FINISHED = "finished"
    REJECTED = "rejected"
    ERROR = "error"
    RATE_LIMITED = "rate_limited"


class ConversationTrigger(str, Enum):
    """Where a conversation came from: OpenHands' triggers, and convtui's
    own (cli, replay)."""

    GUI = "gui"
    CLI = "cli"
    SUGGESTED_TASK = "suggested_task"
    MICROAGENT_MANAGEMENT = "microagent_management"
    REPLAY = "replay"
    OPENHANDS_API = "openhands_api"
    RESOLVER = "resolver"
    SLACK = "slack"
    JIRA = "jira"
    JIRA_DC = "jira_dc"
    LINEAR = "linear"
    BITBUCKET = "bitbucket"


class ProviderType(str, Enum):
    GITHUB = "github"
    GITLAB = "gitlab"
    BITBUCKET = "bitbucket"
    AZURE_DEVOPS = "azure_devops"
    FORGEJO = "forgejo"
    LOCAL = "local"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds: one fixed width, so the strings sort
    in time order (the store's indexes rely on that)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]


def default_title(conversation_id: str) -> str:
    return f"Conversation {conversation_id[:5]}"


DERIVED_TITLE_LENGTH = 60


def derived_title(message: str) -> str | None:
    """A title taken from the start of a first message (until a model names
    the conversation): its first non-empty line, control characters and runs
    of spaces collapsed, cut at a word near DERIVED_TITLE_LENGTH with "…".
    None when the message has no visible text."""
    for line in message.splitlines():
        words = "".join(
            " " if c.isspace() or unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") else c for c in line
        ).split()
        if words:
            break
    else:
        return None
    title = " ".join(words)
    if len(title) <= DERIVED_TITLE_LENGTH:
        return title
    cut = title[: DERIVED_TITLE_LENGTH - 1]
    space = cut.rfind(" ")
    if space >= DERIVED_TITLE_LENGTH // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-") + "…"


def find_control_character(text: str) -> str | None:
    """The first control character in `text` (C0, DEL, C1, line/paragraph
    separators) or lone surrogate (undecodable bytes from argv), or None."""
    for character in text:
        if unicodedata.category(character) in ("Cc", "Zl", "Zp", "Cs"):
            return character
    return None


def check_encodable(text: str, what: str) -> str:
    """Refuse a lone surrogate: Python's stand-in for bytes that were not
    UTF-8 (e.g. in a command-line argument). It cannot be stored as JSON."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} contains bytes that are not valid UTF-8") from None
    return text


def validate_title(raw: str) -> str:
    """Strip and check a title; raises ValueError with a one-line reason."""
    if not isinstance(raw, str):
        raise ValueError("title must be text")
    title = raw.strip()
    if not title:
        raise ValueError("title is empty")
    if len(title) > TITLE_MAX_LENGTH:
        raise ValueError(
            f"title is {len(title)} characters; the limit is {TITLE_MAX_LENGTH}"
        )
    bad = find_control_character(title)
    if bad is not None:
        raise ValueError(f"title contains a control character (U+{ord(bad):04X})")
    return title


class ConversationMetadata(BaseModel):
    """What the store keeps for one conversation."""

    model_config = ConfigDict(extra="ignore")

    conversation_id: str
    title: str
    user_id: str | None = None
    selected_repository: str | None = None
    selected_branch: str | None = None
    git_provider: ProviderType | None = None
    trigger: ConversationTrigger | None = None
    created_at: UtcDatetime
    last_updated_at: UtcDatetime
    pr_number: list[int] = Field(default_factory=list)
    llm_model: str | None = None
    accumulated_cost: float | None = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    status: ConversationStatus = ConversationStatus.STOPPED
    runtime_status: RuntimeStatus | None = None
    agent_state: AgentState | None = None
    status_message: str | None = None
    # The process that runs (or last ran) the loop, so that a loop left
    # RUNNING by a process that died can be shown as STOPPED.
    runner_pid: int | None = None
    runner_host: str | None = None
    archived: bool = False
    # "Always approve" was chosen: actions run without asking, across stops
    # and restarts, until it is turned off. Absent in older data: off.
    always_approve: bool = False
    # The title was taken from the first message: a model's title replaces
    # it, as it replaces the default one; a rename never is.
    title_derived: bool = False
    # Why a loop that ended waits for a person ("error", "limit": a budget,
    # the steps of one message): in the inbox until started again or
    # dismissed. None: nothing to decide.
    attention: Literal["error", "limit"] | None = None
    # The last event each OS user saw (user -> event id): newer events are
    # unread for them. A user absent has no unread events here.
    seen: dict[str, int] = Field(default_factory=dict)

    @field_validator("conversation_id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not CONVERSATION_ID_PATTERN.match(value):
            raise ValueError("conversation_id must be 32 lowercase hex digits")
        return value

    def to_document(self) -> dict[str, Any]:
        """The JSON document stored in TinyDB (timestamps in the sortable form)."""
        document = self.model_dump(mode="json")
        document["created_at"] = format_timestamp(self.created_at)
        document["last_updated_at"] = format_timestamp(self.last_updated_at)
        return document


class ConversationInfo(BaseModel):
    """A conversation as the UI and `list --json` see it: stored metadata
    joined with the live state of its loop (OpenHands ConversationInfo names)."""

    conversation_id: str
    title: str
    user_id: str | None = None
    last_updated_at: UtcDatetime
    created_at: UtcDatetime
    status: ConversationStatus
    runtime_status: RuntimeStatus | None = None
    agent_state: AgentState | None = None
    status_message: str | None = None
    selected_repository: str | None = None
    selected_branch: str | None = None
    git_provider: ProviderType | None = None
    trigger: ConversationTrigger | None = None
    num_connections: int = 0
    url: str | None = None
    session_api_key: str | None = None
    pr_number: list[int] = Field(default_factory=list)
    llm_model: str | None = None
    accumulated_cost: float | None = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    archived: bool = False
    always_approve: bool = False
    attention: Literal["error", "limit"] | None = None  # see ConversationMetadata
    unread: bool = False  # events newer than the last one this OS user saw


class ConversationInfoResultSet(BaseModel):
    results: list[ConversationInfo] = Field(default_factory=list)
    next_page_id: str | None = None


class ConversationResponse(BaseModel):
    status: str = "ok"
    conversation_id: str
    message: str | None = None
    conversation_status: ConversationStatus | None = None


# OpenHands' task types and the template of each (templates/suggested_task).
SUGGESTED_TASK_TEMPLATES = {
    "MERGE_CONFLICTS": "merge_conflicts.j2",
    "FAILING_CHECKS": "failing_checks.j2",
    "UNRESOLVED_COMMENTS": "unresolved_comments.j2",
    "OPEN_ISSUE": "open_issue.j2",
    "OPEN_PR": "open_pr.j2",
}
GENERIC_TERMS = {"request": "Pull request", "short": "PR", "verb": "pull request", "api": "host's API", "token": "GIT_TOKEN", "ci": "CI"}
PROVIDER_TERMS: dict[ProviderType, dict[str, str]] = {
    ProviderType.GITHUB: {**GENERIC_TERMS, "api": "GitHub API", "token": "GITHUB_TOKEN", "ci": "GitHub Actions"},
    ProviderType.GITLAB: {
        "request": "Merge request", "short": "MR", "verb": "merge request", "api": "GitLab API",
        "token": "GITLAB_TOKEN", "ci": "GitLab CI pipeline",
    },
    ProviderType.BITBUCKET: {**GENERIC_TERMS, "api": "Bitbucket API", "token": "BITBUCKET_TOKEN", "ci": "Bitbucket Pipelines"},
    ProviderType.AZURE_DEVOPS: {
        **GENERIC_TERMS, "api": "Azure DevOps API", "token": "AZURE_DEVOPS_TOKEN", "ci": "Azure Pipelines",
    },
    ProviderType.FORGEJO: {**GENERIC_TERMS, "api": "Forgejo API", "token": "FORGEJO_TOKEN", "ci": "Forgejo Actions"},
}  # fmt: skip


class SuggestedTask(BaseModel):
    model_config = ConfigDict(extra="forbid")

    git_provider: ProviderType | None = None
    task_type: str = Field(min_length=1, max_length=100)
    repo: str = Field(min_length=1, max_length=300)
    issue_number: int = Field(ge=0)
    title: str = Field(min_length=1, max_length=TITLE_MAX_LENGTH)

    def prompt(self) -> str:
        """The first message for the task: a prompt per task type (the five
        OpenHands suggests), in the words of the repository's host."""
        template = SUGGESTED_TASK_TEMPLATES.get(self.task_type.upper())
        if template is None:
            return (
                f"Please work on {self.task_type.replace('_', ' ').lower()} "
                f"#{self.issue_number} in repository {self.repo}: {self.title}"
            )
        from jinja2 import Environment, PackageLoader, StrictUndefined

        environment = Environment(loader=PackageLoader("convtui", "templates/suggested_task"), undefined=StrictUndefined)
        terms = PROVIDER_TERMS.get(self.git_provider or ProviderType.GITHUB, GENERIC_TERMS)
        text = environment.get_template(template).render(number=self.issue_number, repo=self.repo, **terms)
        return f"{text.strip()}\n\n({self.title})"


class CreateMicroagent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repo: str = Field(min_length=1, max_length=300)
    git_provider: ProviderType | None = None
    title: str | None = Field(default=None, max_length=TITLE_MAX_LENGTH)


_OWNER_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_REMOTE_URL = re.compile(r"^(https?|ssh|git|file)://[^\s]+$|^[\w.-]+@[\w.-]+:[^\s]+$")
_BAD_BRANCH = re.compile(r"(\.\.|@\{|[\s~^:?*\[\\]|//|^/|/$|\.lock$|^-|^\.|\.$)")


def check_repository(raw: str) -> str:
    """Accept `owner/name`, a git URL, or a local directory (made absolute)."""
    value = raw.strip()
    if not value:
        raise ValueError("repository is empty")
    if find_control_character(value) is not None:
        raise ValueError("repository contains a control character")
    if _REMOTE_URL.match(value) or _OWNER_NAME.match(value):
        return value
    path = Path(value).expanduser()
    if path.is_dir():
        return str(path.resolve())
    raise ValueError(
        f"repository {value!r} is not owner/name, a git URL, or an existing directory"
    )


def check_branch(raw: str) -> str:
    value = raw.strip()
    if not value or len(value) > 250:
        raise ValueError("branch must be 1-250 characters")
    if find_control_character(value) is not None or _BAD_BRANCH.search(value):
        raise ValueError(f"branch {value!r} is not a valid git branch name")
    return value


def check_message(raw: str) -> str:
    if len(raw) > MESSAGE_MAX_LENGTH:
        raise ValueError(f"message is longer than {MESSAGE_MAX_LENGTH} characters")
    if "\x00" in raw:
        raise ValueError("message contains a NUL character")
    return check_encodable(raw, "message")


def validate_reason(raw: str | None) -> str | None:
    """The reason given with a rejection, stripped; None when none was
    given. Raises InvalidInput."""
    if raw is None:
        return None
    reason = raw.strip()
    if len(reason) > REJECT_REASON_MAX:
        raise InvalidInput(f"the reason is {len(reason):,} characters long: at most {REJECT_REASON_MAX:,}")
    if "\x00" in reason:
        raise InvalidInput("the reason contains a NUL character")
    try:
        return check_encodable(reason, "reason") or None
    except ValueError as error:
        raise InvalidInput(str(error)) from None


class NewConversationRequest(BaseModel):
    """Everything `new` accepts; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")

    repository: str | None = None
    git_provider: ProviderType | None = None
    selected_branch: str | None = None
    initial_user_msg: str | None = None
    image_urls: list[str] | None = None
    replay_json: str | None = None
    suggested_task: SuggestedTask | None = None
    create_microagent: CreateMicroagent | None = None
    conversation_instructions: str | None = None
    trigger: ConversationTrigger = ConversationTrigger.GUI

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str | None) -> str | None:
        return None if value is None else check_repository(value)

    @field_validator("selected_branch")
    @classmethod
    def _branch(cls, value: str | None) -> str | None:
        return None if value is None else check_branch(value)

    @field_validator("initial_user_msg", "conversation_instructions")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return None if value is None else check_message(value)

    @field_validator("image_urls")
    @classmethod
    def _image_urls(cls, value: list[str] | None) -> list[str] | None:
        for url in value or []:
            if not re.match(r"^(https?://|data:image/)\S+$", url):
                raise ValueError(f"image url {url[:60]!r} is not an http(s) or data: URL")
        return value

    @model_validator(mode="after")
    def _derive(self) -> NewConversationRequest:
        """Fill what follows from the request: the trigger and, for a
        suggested task or a microagent request, the message and repository."""
        if self.suggested_task is not None:
            self.trigger = ConversationTrigger.SUGGESTED_TASK
            if self.initial_user_msg is None:
                self.initial_user_msg = self.suggested_task.prompt()
            self.repository = self.repository or self.suggested_task.repo
            self.git_provider = self.git_provider or self.suggested_task.git_provider
        elif self.create_microagent is not None:
            self.trigger = ConversationTrigger.MICROAGENT_MANAGEMENT
            self.repository = self.repository or self.create_microagent.repo
            self.git_provider = self.git_provider or self.create_microagent.git_provider
        elif self.replay_json is not None:
            self.trigger = ConversationTrigger.REPLAY
        return self


class ExperimentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    config: dict[str, str] | None = None
