"""Who a Slack person is to an environment: their approver (and override) groups, read from
Slack through a cache (bot.slack.groups: one lookup per group per minute, none for people
listed by id), and whether they may see a run on Home (the channels they are in).

Permission itself is `bot.domain.approvals`' alone: this module only adds to the actor
what Slack knows of them (groups, channel membership) before the rule is asked.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import replace

from slack_sdk import WebClient

from bot.domain import approvals
from bot.ports import EnginePort
from bot.slack.channels import ChannelDirectory
from bot.slack.groups import GroupCache, GroupsBroken, GroupsUnknown
from bot.surface import Actor
from phases.runbook import RunbookError

log = logging.getLogger(__name__)

CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{6,}")
CHANNEL_UNREADABLE = frozenset(
    {"channel_not_found", "missing_scope", "method_not_supported_for_channel_type"}
)
MEMBER_PAGES = 20  # conversations.members pages read per channel (1,000 people each)


class Approvers:
    """The approver groups and channel members of a person, asked of Slack (cached).

    `client` must not sleep on Retry-After (GroupCache answers "unknown" instead).
    """

    def __init__(self, engine: EnginePort, client: WebClient, channels: ChannelDirectory) -> None:
        self.engine = engine
        self._client = client
        self._channels = channels
        self.groups = GroupCache(self.fetch_group)
        # Who is in a channel, for the Home tab (a person sees the runs of channels they are
        # in); one conversations.members read per channel per minute. A channel that cannot
        # be read (private and the bot not in it, scope missing) counts as nobody's.
        self.channel_members = GroupCache(
            self.fetch_members, what="channel", permanent=CHANNEL_UNREADABLE
        )

    def fetch_group(self, group: str, team: str | None) -> list[str]:
        """One usergroups.users.list call, without the SDK's Retry-After sleeps (GroupCache).
        `team_id` is passed whenever the workspace is known: an org-wide (Enterprise Grid)
        token needs it, a workspace token ignores it (docs.slack.dev usergroups.users.list)."""
        resp = self._client.usergroups_users_list(usergroup=group, team_id=team)
        users = resp.get("users") or []
        return [u for u in users if isinstance(u, str)]

    def group_lists(self, env_name: str, actor: Actor) -> dict[str, tuple[str, ...] | None] | None:
        """Members (bare user ids) of the environment's approver groups, from the cache
        (None for a group that cannot be read now); None where there are no groups or the
        actor is from another workspace."""
        try:
            env = self.engine.environment(env_name)
        except RunbookError:
            return None
        if not env.approver_groups or not actor.in_workspace(env.slack_team):
            return None
        # The workspace the groups live in: the environment's, unless that is an Enterprise
        # Grid org id (E…), then the workspace of the click.
        team = env.slack_team if (env.slack_team or "").startswith("T") else actor.team
        lists: dict[str, tuple[str, ...] | None] = {}
        for group in env.approver_groups:
            try:
                lists[group] = self.groups.members(group, team)
            except GroupsUnknown:
                lists[group] = None
        return lists

    def directory_problems(self, env_name: str) -> list[str]:
        """Approver groups of the environment that Slack will never let the bot read
        (preflight). A busy Slack is not such a problem (the click asks again), and groups of
        an org-wide environment (`slack_team: E…`) live in the workspace of each click, so
        they are looked up there, not here."""
        try:
            env = self.engine.environment(env_name)
        except RunbookError:
            return []
        team = env.slack_team
        if team is not None and not team.startswith("T"):
            return []
        problems = []
        for group in env.approver_groups:
            try:
                self.groups.members(group, team)
            except GroupsUnknown as exc:
                log.warning("preflight: %s", exc)
                continue
            problem = self.groups.problem(group)
            if problem is not None:
                problems.append(problem)
        return problems

    def listed(self, actor: Actor, env_name: str) -> bool:
        """Listed by id among the environment's approvers (approvals.is_listed): no group
        lookup needed."""
        try:
            env = self.engine.environment(env_name)
        except RunbookError:
            return False
        return approvals.is_listed(env, actor)

    def with_groups(self, actor: Actor, env_name: str) -> Actor:
        """Adds the environment's approver groups the actor belongs to. Raises GroupsUnknown
        when it depends on a group that cannot be read now."""
        if self.listed(actor, env_name):
            return actor
        return self.for_start(actor, env_name)[0]

    def for_start(self, actor: Actor, env_name: str) -> tuple[Actor, list[str] | None]:
        """The actor with their approver groups, and the qualified ids of every member of the
        environment's approver groups (for the quorum check at start; None: no groups, or
        not every group could be read)."""
        lists = self.group_lists(env_name, actor)
        if lists is None:
            return actor, None
        groups = frozenset(g for g, users in lists.items() if users and actor.user in users)
        if not groups and None in lists.values() and not self.listed(actor, env_name):
            raise GroupsUnknown(f"approver groups of {env_name}")
        broken = [p for g in lists if (p := self.groups.problem(g)) is not None]
        if not groups and broken and not self.listed(actor, env_name):
            # Counted as empty, the group would make them "not an approver": say what is wrong.
            raise GroupsBroken(
                f"I can't tell whether you approve for {env_name}: "
                + "; ".join(broken)
                + ". Nothing was done; an approver listed by id can act meanwhile."
            )
        team = actor.team or actor.id.partition(":")[0]
        if None in lists.values():
            return replace(actor, groups=groups), None
        members = {
            Actor.slack(team, uid, enterprise=actor.enterprise).id
            for users in lists.values()
            for uid in users or ()
        }
        return replace(actor, groups=groups), sorted(members)

    def with_override_groups(self, actor: Actor, env_name: str) -> Actor:
        """The actor with the override groups they belong to (when the environment names
        its own; else its approver groups, as `with_groups`)."""
        try:
            env = self.engine.environment(env_name)
        except RunbookError:
            return actor
        if not env.override_approvers and not env.override_approver_groups:
            return self.with_groups(actor, env_name)
        if approvals.is_override_approver(env, actor) or not actor.in_workspace(env.slack_team):
            return actor
        team = env.slack_team if (env.slack_team or "").startswith("T") else actor.team
        mine = {
            g for g in env.override_approver_groups if actor.user in self.groups.members(g, team)
        }
        return replace(actor, groups=actor.groups | frozenset(mine))

    def may_start(self, env_name: str, actor: Actor, members: list[str] | None) -> bool:
        """Whether the engine would let `actor` start a run (it checks again, and audits a
        refusal): only then is "starting…" posted in the run's channel."""
        try:
            env = self.engine.environment(env_name)
        except RunbookError:
            return False
        return approvals.start_refusal(env_name, env, actor, members) is None

    def may_see(self, actor: Actor) -> Callable[[str, str | None], bool]:
        """Whether `actor` may see an environment's run or schedule posted in a channel."""

        def see(env_name: str, channel: str | None) -> bool:
            try:
                env = self.engine.environment(env_name)
            except RunbookError:
                return False
            try:
                who = self.with_groups(actor, env_name)
            except GroupsUnknown:  # groups unreadable now: listed ids and channels still count
                who = actor
            return approvals.may_see(env, who, lambda: self.in_channel(channel, actor))

        return see

    def in_channel(self, channel: str | None, actor: Actor) -> bool:
        """In the channel, by Slack's member list (cached a minute). A #name is looked up as
        its id first (conversations.members takes ids); an unreadable list is nobody's: no."""
        if channel and not CHANNEL_ID.fullmatch(channel):
            channel = self._channels.resolve(channel)  # a runbook's #name: its id
        if not channel or not CHANNEL_ID.fullmatch(channel):
            return False
        try:
            return actor.user in self.channel_members.members(channel)
        except GroupsUnknown:
            return False

    def fetch_members(self, channel: str, _team: str | None) -> list[str]:
        """conversations.members, every page (up to MEMBER_PAGES of 1,000)."""
        users: list[str] = []
        cursor: str | None = None
        for _ in range(MEMBER_PAGES):
            resp = self._client.conversations_members(channel=channel, limit=1000, cursor=cursor)
            users += [u for u in resp.get("members") or [] if isinstance(u, str)]
            meta = resp.get("response_metadata") or {}
            cursor = meta.get("next_cursor") if isinstance(meta, dict) else None
            if not cursor:
                break
        return users
