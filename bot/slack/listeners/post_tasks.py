"""The post-cutover checklist's Done buttons (bot.slack.post_task_actions): the task's owner
or an approver marks it done, once."""

from __future__ import annotations

from slack_bolt import App

from bot.slack.deps import Deps
from bot.slack.post_task_actions import TASK_DONE, done_click


def register(app: App, deps: Deps) -> None:
    app.action(TASK_DONE)(deps.dispatch.on_click(done_click, deps))  # issue 24
