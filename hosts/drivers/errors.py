"""Hypervisor errors a person can act on. Each has a stable code (used by the API and the job log)."""


class DriverError(Exception):
    code = "hypervisor_error"

    def __init__(self, message: str, *, detail: str = ""):
        super().__init__(message)
        self.message = message
        self.detail = detail  # the hypervisor's own words, for the job log

    def __str__(self) -> str:
        return self.message


class HostUnreachable(DriverError):
    code = "host_unreachable"

    def __init__(self, message: str, *, detail: str = "", uri: str = ""):
        super().__init__(message, detail=detail)
        self.uri = uri  # which host did not answer (a migration talks to two)


class DomainNotFound(DriverError):
    code = "domain_not_found"


class DomainNotRunning(DriverError):
    code = "domain_not_running"


class AboveMaxMemory(DriverError):
    code = "above_maxmem"


class NotSupported(DriverError):
    code = "not_supported"


class GuestDidNotShutDown(DriverError):
    code = "shutdown_timeout"


class InvalidRequest(DriverError):
    code = "invalid_request"


class MigrationStopped(DriverError):
    """A migration stopped on request before it finished: the domain goes on running on its source."""

    code = "cancelled"
