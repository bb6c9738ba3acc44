"""The rules of a cutover, free of SQL, threads and chat: states, identity, authorization.

Everything here is pure: the store persists what these modules decide, the engine
sequences it, and every surface (Slack, console, scheduler) asks the same rules.
"""
