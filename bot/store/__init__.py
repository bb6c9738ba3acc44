"""Persistence helpers that more than one layer needs, each over `bot.db.Database`."""
