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
    AnswersInvalid,
    ArtifactProblem,
    AuthenticationFailed,
    Conflict,
    ContainerFailed,
    DcOverviewError,
    DockerMissing,
    DuplicateKey,
    DuplicateServer,
    DuplicateUser,
    EngineUnavailable,
    ForeignDatabase,
    HostKeyChanged,
    ImagePullFailed,
    ImportProblem,
    InvalidAddress,
    InvalidInput,
    InvalidName,
    InvalidPort,
    InvalidRoute,
    InvalidStackOption,
    IpmiMonitorNotFound,
    KeyInUse,
    KeyNotFound,
    LastAdmin,
    MetricsUnavailable,
    NoSuchRecord,
    NotFound,
    OperationUnavailable,
    PermissionDenied,
    PrometheusReloadFailed,
    ProxyConfigInvalid,
    ServerNotFound,
    SetupDone,
    SshError,
    StackNotApplied,
    StorageError,
    UnknownService,
    UserNotFound,
)
from .exporter_install import InstallResult
from .fleet_check import CheckResult
from .identity import ApiToken, Role, User
from .inventory import ImportReport
from .quickstart import QuickstartReport
from .quickstart_answers import QuickstartAnswers
from .quickstart_answers_file import load_answers
from .stack import ServiceSpec, StackOptions, StackSpec
from .stack_apply import ApplyReport, ServiceChange
from .stack_control import ServiceStatus
from .worker_session import TrustReport

__version__ = "2.0.0"

__all__ = [
    "AnswersInvalid",
    "ApiToken",
    "ApplyReport",
    "ArtifactProblem",
    "AsyncFleet",
    "AuthenticationFailed",
    "CheckResult",
    "Conflict",
    "ContainerFailed",
    "DcOverviewError",
    "DockerMissing",
    "DuplicateKey",
    "DuplicateServer",
    "DuplicateUser",
    "EngineUnavailable",
    "ExporterState",
    "Fleet",
    "ForeignDatabase",
    "HostKeyChanged",
    "ImagePullFailed",
    "ImportProblem",
    "ImportReport",
    "InstallResult",
    "InvalidAddress",
    "InvalidInput",
    "InvalidName",
    "InvalidPort",
    "InvalidRoute",
    "InvalidStackOption",
    "IpmiMonitorNotFound",
    "KeyInUse",
    "KeyNotFound",
    "LastAdmin",
    "load_answers",
    "MetricsUnavailable",
    "NoSuchRecord",
    "NotFound",
    "open",
    "open_async",
    "OperationUnavailable",
    "PermissionDenied",
    "PrometheusReloadFailed",
    "ProxyConfigInvalid",
    "QuickstartAnswers",
    "QuickstartReport",
    "Role",
    "Server",
    "ServerNotFound",
    "ServerStatus",
    "ServiceChange",
    "ServiceSpec",
    "ServiceStatus",
    "Settings",
    "SetupDone",
    "SshError",
    "SshKey",
    "StackNotApplied",
    "StackOptions",
    "StackSpec",
    "StorageError",
    "TrustReport",
    "UnknownService",
    "User",
    "UserNotFound",
    "__version__",
]
