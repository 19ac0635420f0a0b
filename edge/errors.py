"""Errors the person at the terminal can fix."""


class UserError(Exception):
    """Printed as `footfall: <message>` without a traceback; exit status 2."""
