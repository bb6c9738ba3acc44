"""How the bot's state is drawn in Slack, one presenter per kind of message, each given the
shared `SurfaceContext` (base.py) and only the presenters it calls; `SlackSurface`
(bot.slack.surface) composes them."""
