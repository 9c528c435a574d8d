"""Policy files (schema ``autoc.policy/2``; ``/1`` still reads): the portable record of a found model, written by
the search and read by export, the latency commands and users (``autoc.load_policy``)."""
from autoc.policy.file import PolicyFile, load_policy, write_policy

__all__ = ["PolicyFile", "load_policy", "write_policy"]
