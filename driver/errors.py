"""The driver's errors. Each str() is the text after virsh's `error: `."""

from __future__ import annotations


class DriverError(Exception):
    """Base of every error the driver raises on purpose."""


class XMLError(DriverError):
    """A domain document that cannot be accepted: where, and why."""

    def __init__(
        self, reason: str, *, source: str = "", line: int | None = None, path: str = ""
    ) -> None:
        self.reason = reason
        self.source = source
        self.line = line
        self.path = path
        super().__init__(self.describe())

    def describe(self) -> str:
        where = self.source or "(domain_definition)"
        if self.line is not None:
            where += f":{self.line}"
        return f"{where}: {self.path}: {self.reason}" if self.path else f"{where}: {self.reason}"


class XMLSyntaxError(XMLError):
    """Not well-formed, or refused by the hardened parser (DOCTYPE, size)."""


class XMLValidationError(XMLError):
    """Well-formed but outside the schema (schemas/README.md)."""


class ConfigError(XMLError):
    """Valid shape but inconsistent meaning (a semantic check failed)."""


class InvalidURI(DriverError):
    def __init__(self, uri: str, why: str) -> None:
        super().__init__(f"invalid argument: {why}: '{uri}'" if why else uri)


class NoDomainError(DriverError):
    """libvirt's VIR_ERR_NO_DOMAIN; virsh prints `failed to get domain 'NAME'`."""

    def __init__(self, key: str, detail: str = "") -> None:
        self.key = key
        super().__init__(detail or f"Domain not found: no domain with matching name '{key}'")


class OperationFailed(DriverError):
    def __init__(self, what: str) -> None:
        super().__init__(f"operation failed: {what}")


class OperationInvalid(DriverError):
    def __init__(self, what: str) -> None:
        super().__init__(f"Requested operation is not valid: {what}")


class InternalError(DriverError):
    def __init__(self, what: str) -> None:
        super().__init__(f"internal error: {what}")


class Unsupported(DriverError):
    def __init__(self, what: str) -> None:
        super().__init__(f"unsupported configuration: {what}")


class OperationTimeout(DriverError):
    """libvirt's VIR_ERR_OPERATION_TIMEOUT."""

    def __init__(self, what: str) -> None:
        super().__init__(f"Timed out during operation: {what}")


class OperationForbidden(DriverError):
    """libvirt's VIR_ERR_OPERATION_DENIED: a change on a read-only connection."""

    def __init__(self, what: str) -> None:
        super().__init__(f"operation forbidden: {what}")


class HostError(DriverError):
    """A call on the host failed (libvirt's VIR_ERR_SYSTEM_ERROR): what, and strerror."""

    def __init__(self, what: str, err: int) -> None:
        import os

        super().__init__(f"{what}: {os.strerror(err)}")
        self.errno = err


class FileError(DriverError):
    """A file that cannot be read as asked; str() is the whole message."""


class InvalidArgument(DriverError):
    """libvirt's VIR_ERR_INVALID_ARG."""

    def __init__(self, what: str) -> None:
        super().__init__(f"invalid argument: {what}")


class ArgumentUnsupported(DriverError):
    """libvirt's VIR_ERR_ARGUMENT_UNSUPPORTED: a typed parameter the driver has not."""

    def __init__(self, what: str) -> None:
        super().__init__(f"argument unsupported: {what}")


class NoSupport(DriverError):
    """libvirt's VIR_ERR_NO_SUPPORT: the driver has no such call (what libvirt-lxc says
    of save, setvcpus, reset…)."""

    def __init__(self, api: str) -> None:
        super().__init__(f"this function is not supported by the connection driver: {api}")


class OperationUnsupported(DriverError):
    """libvirt's VIR_ERR_OPERATION_UNSUPPORTED: the host cannot do what was asked."""

    def __init__(self, what: str) -> None:
        super().__init__(f"Operation not supported: {what}")


class NoHostname(DriverError):
    """libvirt's VIR_ERR_NO_HOSTNAME."""

    def __init__(self, what: str) -> None:
        super().__init__(f"no hostname found: {what}")
