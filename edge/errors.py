"""The one exception type the CLI turns into a one-line message."""


class FacelatchError(Exception):
    """A problem the user can fix (bad file, wrong model, bad value); the message is
    printed as one line without a traceback."""
