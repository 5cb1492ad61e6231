"""The project's own exception types.

Every error that a user can cause (a bad file, a bad parameter, a model that does not fit the data)
is raised as a subclass of :class:`GencError`, so that the CLI can print it as one line instead of a
traceback. Each also subclasses the matching built-in type (``ValueError``, ``FileNotFoundError``),
so library users can catch either.
"""


class GencError(Exception):
    """Base class of every error that the CLI reports as one line."""


class DataError(GencError, ValueError):
    """Unreadable, empty or ill-shaped input data (images, folders, volumes)."""


class CheckpointError(GencError, ValueError):
    """A model folder or file that cannot be loaded safely: missing, malformed or unsafe."""


class ConfigError(GencError, ValueError):
    """An unknown name or an impossible parameter (task, method, architecture, dataset)."""


class TrainingError(GencError, RuntimeError):
    """Training that cannot go on: a loss or weight that is no longer finite."""
