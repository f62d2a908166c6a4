"""The runtime's error hierarchy. Every message says what was wrong and what to do instead."""


class BerthError(Exception):
    """Base class of every error the runtime raises on purpose. The CLI prints its message and
    exits with `exit_code` (125 like docker for errors of the tool itself)."""

    exit_code = 125


class InvalidArgument(BerthError):
    """A flag, field or value is malformed or out of range."""


class NotFound(BerthError):
    """An image, container, volume or network that does not exist."""


class Conflict(BerthError):
    """The request clashes with existing state: a name taken, an object in use."""


class ImageError(BerthError):
    """An image archive, manifest or layer could not be read."""


class UnsafeArchive(ImageError):
    """An archive entry would escape its target directory or create something refused."""


class DigestMismatch(ImageError):
    """A blob's content does not match the digest it was referenced by."""


class RegistryError(BerthError):
    """The registry answered with an error or could not be reached."""


class RuntimeFailure(BerthError):
    """The OCI runtime, conmon or the kernel refused an operation."""


class ContainerNotRunning(Conflict):
    """An operation that needs a running container found it stopped."""
