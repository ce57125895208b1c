"""The error and warning types polytask raises for what a user can fix.

Every module's own error (``ConfigError``, ``DataError``, ...) derives from :class:`PolytaskError`,
so the command line can print any of them as one line and leave a traceback to ``--debug``; a
library caller may catch the one base class. Warnings derive from :class:`PolytaskWarning` and the
command line prints them as ``polytask: warning: ...``.
"""
from __future__ import annotations


class PolytaskError(Exception):
    """A problem in what the user gave (a config key, a data line, a run directory); the message
    names where it is."""


class PolytaskWarning(UserWarning):
    """Something polytask accepted but the user should look at (a label seen only once, say)."""
