"""dc-overview: see and run a fleet of GPU servers.

    import dc_overview
    with dc_overview.open() as fleet:
        fleet.import_servers("gpu-01,10.0.0.11\ngpu-02,10.0.0.12")
        for server in fleet.servers():
            print(server.name, server.address, server.status.value)
"""

import importlib
import importlib.util

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
from .inventory import ImportReport

__version__ = "2.0.0"

# The rest of the public names come from modules that most commands never
# use; each is imported when first asked for (``dc_overview.QuickstartAnswers``
# or ``from dc_overview import QuickstartAnswers``), then kept here.
_LATER = {
    "InstallResult": "exporter_install",
    "CheckResult": "fleet_check",
    "ApiToken": "identity",
    "Role": "identity",
    "User": "identity",
    "QuickstartReport": "quickstart",
    "QuickstartAnswers": "quickstart_answers",
    "load_answers": "quickstart_answers_file",
    "ServiceSpec": "stack",
    "StackOptions": "stack",
    "StackSpec": "stack",
    "ApplyReport": "stack_apply",
    "ServiceChange": "stack_apply",
    "ServiceStatus": "stack_control",
    "TrustReport": "worker_session",
}


def __getattr__(name: str) -> object:
    module = _LATER.get(name)
    if module is not None:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
    elif not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        value = importlib.import_module(f".{name}", __name__)  # a submodule: dc_overview.quickstart
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value

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
