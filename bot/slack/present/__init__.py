"""How the bot's state is drawn in Slack, one module per kind of message; `SlackSurface`
(bot.slack.surface) is all of them together."""
