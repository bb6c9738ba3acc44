"""The Slack surface: slash commands, checkpoint messages and approver-only buttons (slack-bolt).

blocks  — Block Kit messages built from `bot.views`, inside Slack's limits (pure functions)
surface — `SlackSurface`: the engine's `Surface`, posting and updating messages via the Web API
app     — the Bolt app: `/cutover`, the gate buttons and the manual-step checkboxes
server  — `cutover serve`: Socket Mode, or HTTP with /slack/events and /healthz
"""
