"""The one exception type users see: a message that names the input, the problem and the fix."""


class DimensionXError(Exception):
    """An error caused by what the user passed or by the machine's state, never by a bug.

    The CLI prints its message alone (no traceback) and exits with status 2.
    """
