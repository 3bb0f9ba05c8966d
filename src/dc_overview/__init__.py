"""dc-overview: see and run a fleet of GPU servers.

    import dc_overview
    with dc_overview.open() as fleet:
        fleet.import_servers("gpu-01,10.0.0.11\ngpu-02,10.0.0.12")
        for server in fleet.servers():
            print(server.name, server.address, server.status.value)
"""

from .api import AsyncFleet, Fleet, open, open_async
from .domain import ExporterState, Server, ServerStatus, Settings, SshKey
from .errors import (
    Conflict,
    DcOverviewError,
    DuplicateKey,
    DuplicateServer,
    ForeignDatabase,
    ImportProblem,
    InvalidAddress,
    InvalidInput,
    InvalidName,
    InvalidPort,
    IpmiMonitorNotFound,
    KeyInUse,
    KeyNotFound,
    NotFound,
    ServerNotFound,
    StorageError,
)
from .inventory import ImportReport
from .identity import ApiToken, Role, User
from .errors import (
    AuthenticationFailed,
    DuplicateUser,
    LastAdmin,
    MetricsUnavailable,
    NoSuchRecord,
    OperationUnavailable,
    PermissionDenied,
    SetupDone,
    UserNotFound,
)
from .errors import ArtifactProblem, HostKeyChanged, SshError
from .exporter_install import InstallResult
from .fleet_check import CheckResult
from .worker_session import TrustReport

from .errors import (
    ContainerFailed,
    EngineUnavailable,
    ImagePullFailed,
    InvalidRoute,
    InvalidStackOption,
    PrometheusReloadFailed,
    ProxyConfigInvalid,
    StackNotApplied,
    UnknownService,
)
from .stack import ServiceSpec, StackOptions, StackSpec
from .stack_apply import ApplyReport, ServiceChange
from .stack_control import ServiceStatus

from .errors import AnswersInvalid, DockerMissing
from .quickstart import QuickstartReport
from .quickstart_answers import QuickstartAnswers
from .quickstart_answers_file import load_answers

__version__ = "2.0.0"

__all__ = [
    "AsyncFleet",
    "Conflict",
    "DcOverviewError",
    "DuplicateKey",
    "DuplicateServer",
    "ExporterState",
    "Fleet",
    "ForeignDatabase",
    "ImportProblem",
    "ImportReport",
    "InvalidAddress",
    "InvalidInput",
    "InvalidName",
    "InvalidPort",
    "IpmiMonitorNotFound",
    "KeyInUse",
    "KeyNotFound",
    "NotFound",
    "Server",
    "ServerNotFound",
    "ServerStatus",
    "Settings",
    "SshKey",
    "StorageError",
    "ApiToken",
    "AuthenticationFailed",
    "DuplicateUser",
    "LastAdmin",
    "MetricsUnavailable",
    "NoSuchRecord",
    "OperationUnavailable",
    "PermissionDenied",
    "Role",
    "SetupDone",
    "User",
    "UserNotFound",
    "ArtifactProblem",
    "CheckResult",
    "HostKeyChanged",
    "InstallResult",
    "SshError",
    "TrustReport",
    "ApplyReport",
    "ContainerFailed",
    "EngineUnavailable",
    "ImagePullFailed",
    "InvalidRoute",
    "InvalidStackOption",
    "PrometheusReloadFailed",
    "ProxyConfigInvalid",
    "ServiceChange",
    "ServiceSpec",
    "ServiceStatus",
    "StackNotApplied",
    "StackOptions",
    "StackSpec",
    "UnknownService",
    "AnswersInvalid",
    "DockerMissing",
    "QuickstartAnswers",
    "QuickstartReport",
    "load_answers",
    "__version__",
    "open",
    "open_async",
]
