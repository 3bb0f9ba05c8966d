"""Domain errors: each one says what went wrong and what to do next.

Front ends map the families to exit codes and HTTP statuses:
``InvalidInput`` -> 400 / exit 1, ``NotFound`` -> 404, ``Conflict`` -> 409,
anything else derived from ``DcOverviewError`` -> 500-class / exit 1.
"""

from __future__ import annotations


class DcOverviewError(Exception):
    """Base of every error a user can act on."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


# -- bad input ---------------------------------------------------------------


class InvalidInput(DcOverviewError):
    """A value given by the user is not acceptable. ``field`` names it."""

    def __init__(self, field: str, message: str, hint: str | None = None) -> None:
        super().__init__(f"{field}: {message}", hint)
        self.field = field


class InvalidName(InvalidInput):
    pass


class InvalidAddress(InvalidInput):
    pass


class InvalidPort(InvalidInput):
    pass


class InvalidLabel(InvalidInput):
    pass


class InvalidSetting(InvalidInput):
    pass


class InvalidKey(InvalidInput):
    pass


class ImportProblem(InvalidInput):
    """An import was refused; nothing was changed. ``problems`` lists each
    ``(where, field, message)``; ``where`` is e.g. ``servers.csv line 3``."""

    def __init__(self, source: str, problems: list[tuple[str, str, str]]) -> None:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        DcOverviewError.__init__(
            self,
            f"{first[0]}: {first[1]}: {first[2]}{more}",
            f"nothing was imported from {source}; fix the input and run the import again",
        )
        self.field = first[1]
        self.source = source
        self.problems = problems

    def details(self) -> str:
        """Every problem, one per line, then what to do."""
        lines = [f"nothing was imported from {self.source}; {len(self.problems)} problem(s):"]
        lines += [f"  {where}: {field}: {message}" for where, field, message in self.problems]
        return "\n".join(lines)


# -- lookups -----------------------------------------------------------------


class NotFound(DcOverviewError):
    pass


class ServerNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"no server named {name!r}", "see `dc-overview servers list`")
        self.name = name


class KeyNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"no SSH key named {name!r}", "see `dc-overview keys list`")
        self.name = name


class IpmiMonitorNotFound(NotFound):
    def __init__(self, searched: list[str]) -> None:
        super().__init__(
            "no ipmi-monitor database found (looked in " + ", ".join(searched) + ")",
            "give its path with --path /path/to/ipmi_events.db",
        )


# -- conflicts -----------------------------------------------------------------


class Conflict(DcOverviewError):
    pass


class DuplicateServer(Conflict):
    def __init__(self, field: str, value: str, existing: str) -> None:
        super().__init__(
            f"a server with {field} {value!r} already exists ({existing})",
            "choose another, or change the existing one with `dc-overview servers update`",
        )
        self.field = field
        self.value = value


class DuplicateKey(Conflict):
    def __init__(self, name: str) -> None:
        super().__init__(f"an SSH key named {name!r} already exists", "choose another name")
        self.name = name


class KeyInUse(Conflict):
    def __init__(self, name: str, servers: list[str]) -> None:
        shown = ", ".join(servers[:5]) + (" ..." if len(servers) > 5 else "")
        super().__init__(
            f"SSH key {name!r} is used by {len(servers)} server(s): {shown}",
            "give those servers another key first",
        )
        self.name = name


# -- the environment ---------------------------------------------------------------


class StorageError(DcOverviewError):
    """The data store cannot be opened or is damaged."""


class ForeignDatabase(DcOverviewError):
    """A database file is not what it was said to be."""


# -- accounts, the web app and the API ---------------------------------------------------


class NoSuchRecord(NotFound):
    """A lookup by id found nothing (``kind`` is e.g. ``server``, ``SSH key``)."""

    def __init__(self, kind: str, record_id: object) -> None:
        super().__init__(f"no {kind} with id {record_id}")
        self.kind = kind
        self.record_id = record_id


class UserNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"no user named {name!r}", "see `dc-overview users list`")
        self.name = name


class DuplicateUser(Conflict):
    def __init__(self, name: str) -> None:
        super().__init__(f"a user named {name!r} already exists", "choose another name")
        self.name = name


class LastAdmin(Conflict):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"{name!r} is the last admin; the fleet would have nobody to manage it",
            "make another user admin first",
        )
        self.name = name


class SetupDone(Conflict):
    def __init__(self) -> None:
        super().__init__("the first admin already exists", "log in, or ask an admin to add you")


class AuthenticationFailed(DcOverviewError):
    """Wrong user name or password, or an unknown or expired token."""

    def __init__(self, message: str = "wrong user name or password") -> None:
        super().__init__(message)


class PermissionDenied(DcOverviewError):
    def __init__(self, action: str) -> None:
        super().__init__(f"{action} needs the admin role", "ask an admin")
        self.action = action


class InvalidSecretName(InvalidInput):
    def __init__(self, name: str, known: tuple[str, ...]) -> None:
        super().__init__("name", f"{name!r} is not a known secret", "known: " + ", ".join(known))


class MetricsUnavailable(DcOverviewError):
    """Prometheus could not be asked (unreachable, slow, or an error answer)."""


class OperationUnavailable(DcOverviewError):
    """An operation this build or this fleet cannot run (e.g. no SSH client)."""

    def __init__(self, operation: str, hint: str | None = None) -> None:
        super().__init__(f"{operation} is not available here", hint)
        self.operation = operation


# -- reaching the workers over SSH (fleet operations) ----------------------------------


class SshError(DcOverviewError):
    """A worker could not be reached or did not do what was asked. ``server``
    names it; ``retryable`` says whether trying again soon may help."""

    retryable = False

    def __init__(self, server: str, message: str, hint: str | None = None) -> None:
        super().__init__(f"{server}: {message}", hint)
        self.server = server


class HostUnreachable(SshError):
    """Nothing answered: refused, no route, unknown name, or connect timeout."""


class ConnectionDropped(SshError):
    """The worker's sshd hung up before the login finished; sshd does that
    beyond ``MaxStartups`` unauthenticated connections at once."""

    retryable = True


class SshAuthFailed(SshError):
    pass


class HostKeyChanged(SshError):
    """The worker offered another host key than the one pinned for it."""

    def __init__(self, server: str, pinned: str, offered: str) -> None:
        super().__init__(
            server,
            f"the SSH host key changed (pinned {pinned}, offered {offered}); the connection was refused",
            f"if the machine was reinstalled or its key rotated, re-trust it with "
            f"`dc-overview servers trust {server}`",
        )
        self.pinned = pinned
        self.offered = offered


class CommandTimeout(SshError):
    pass


class RemoteCommandFailed(SshError):
    """A command on the worker exited non-zero; ``output`` holds its last lines."""

    def __init__(self, server: str, message: str, output: str = "", hint: str | None = None) -> None:
        super().__init__(server, message, hint)
        self.output = output


class NoSshKey(SshError):
    def __init__(self, server: str) -> None:
        super().__init__(
            server,
            "no SSH key is set for this server and there is no default key",
            f"give it one with `dc-overview servers update {server} --key NAME` "
            "or set one for all: `dc-overview settings set default_ssh_key NAME`",
        )


class SshUnavailable(DcOverviewError):
    def __init__(self) -> None:
        super().__init__("no SSH client is configured for this fleet", "open the fleet with dc_overview.open()")


# -- exporter artifacts ---------------------------------------------------------------


class ArtifactProblem(DcOverviewError):
    """An exporter binary could not be fetched, or is not what was pinned."""


class ArtifactChecksumMismatch(ArtifactProblem):
    def __init__(self, what: str, expected: str, actual: str) -> None:
        super().__init__(
            f"{what} has sha256 {actual}, but {expected} is pinned; it was not used",
            "download it again, or give a verified local copy (--node-exporter-binary PATH)",
        )
        self.expected = expected
        self.actual = actual


# -- alert delivery (Alertmanager) -----------------------------------------------------


class InvalidAlerting(InvalidInput):
    """A setting of where alerts go (webhook, e-mail, timings) is not acceptable."""


# -- the monitoring stack (containers, the proxy, Prometheus) ----------------------------


class InvalidStackOption(InvalidInput):
    pass


class UnknownService(NotFound):
    def __init__(self, name: str, known: tuple[str, ...]) -> None:
        super().__init__(f"no service named {name!r} in the stack", "services: " + ", ".join(known))
        self.name = name


class EngineUnavailable(DcOverviewError):
    """The container engine cannot be reached (not installed, not running,
    or no permission on its socket)."""


class ImagePullFailed(DcOverviewError):
    def __init__(self, image: str, reason: str) -> None:
        super().__init__(
            f"cannot pull image {image}: {reason}",
            "nothing was changed: the running stack is as it was; check the image name "
            "and this host's access to its registry",
        )
        self.image = image
        self.reason = reason


class ImageMissing(DcOverviewError):
    def __init__(self, image: str) -> None:
        super().__init__(f"image {image} is not on this host", "pull it, or run `dc-overview stack apply`")
        self.image = image


class ContainerFailed(DcOverviewError):
    """A container did not start, or did not become healthy in time.
    ``logs`` holds its last output lines."""

    def __init__(self, service: str, message: str, logs: str = "", hint: str | None = None) -> None:
        super().__init__(f"{service}: {message}", hint)
        self.service = service
        self.logs = logs

    def details(self) -> str:
        tail = "\n".join("  | " + line for line in self.logs.splitlines()[-20:])
        return str(self) + (f"\n  last output:\n{tail}" if tail else "")


class StackNotApplied(NotFound):
    def __init__(self) -> None:
        super().__init__("the monitoring stack is not running on this host", "start it with `dc-overview stack apply`")


class ProxyConfigInvalid(DcOverviewError):
    def __init__(self, what: str, output: str) -> None:
        lines = [line for line in output.strip().splitlines() if line.strip()]
        reason = next((line for line in lines if "[emerg]" in line), lines[-1] if lines else "nginx -t failed")
        super().__init__(
            f"the proxy refused {what}: {reason}",
            "the change was undone; the proxy keeps serving its previous configuration",
        )
        self.output = output


class InvalidRoute(InvalidInput):
    pass


class PrometheusReloadFailed(DcOverviewError):
    def __init__(self, message: str) -> None:
        super().__init__(
            f"Prometheus refused to reload its configuration: {message}",
            "it keeps running with its previous configuration; see `dc-overview logs prometheus`",
        )


# -- quickstart ------------------------------------------------------------------------------


class AnswersInvalid(InvalidInput):
    """Quickstart's answers were refused before anything was changed.
    ``problems`` lists each ``(where, field, message)``; ``where`` is e.g.
    ``answers.yaml line 7``."""

    def __init__(self, source: str, problems: list[tuple[str, str, str]]) -> None:
        where, field, message = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        DcOverviewError.__init__(self, f"{where}: {field}: {message}{more}",
                                 f"nothing was changed; fix {source} and run quickstart again")
        self.field = field
        self.source = source
        self.problems = problems

    def details(self) -> str:
        lines = [f"{len(self.problems)} problem(s) in {self.source}; nothing was changed:"]
        lines += [f"  {where}: {field}: {message}" for where, field, message in self.problems]
        return "\n".join(lines)


class DockerMissing(DcOverviewError):
    """The master's stack needs Docker and it is not there (or not running)."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"Docker is needed to run the monitoring stack on this host, and {reason}; nothing was changed",
            "install it (apt-get install docker.io) and start it, or let quickstart install it "
            "(answer yes when asked, or docker.install: yes in the answers file), then run quickstart again",
        )
        self.reason = reason
