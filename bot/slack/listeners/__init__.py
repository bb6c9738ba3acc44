"""The Slack listeners, one module per interaction, each with `register(app, deps)`
(bot.slack.app lists them)."""
