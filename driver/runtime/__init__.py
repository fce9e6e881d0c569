"""Kernel work, one facility per module. Only the supervisor and its children call these."""
