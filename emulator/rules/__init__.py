"""The rules engine: compiled rules indexed by topic filter, every message through them,
actions executed, failures routed to the error action; and the dry run of the same path."""
