"""Why a translation model directory cannot be used: raised by the loader and the tokenisers alike."""


class ModelLoadError(Exception):
    """A directory is not a usable translation model; the message says what is missing and how to fix it."""


class DeviceUnavailableError(ModelLoadError):
    """The requested device or compute type cannot run here; the message says what to install or change."""
