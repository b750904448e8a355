"""Out-of-process components: the kernel as the client of ``ComponentService``.

:class:`ComponentLink` holds one component's session (dial or spawn,
``Describe``, the session, supervision with backoff);
:class:`ComponentsService` runs them all as one of the kernel's service
components. ``docs/components.md`` describes the protocol and the failure
behaviour.
"""

from kernel.components.host import ENTRY_POINT_GROUP, ComponentsService, discover, resolve_specs
from kernel.components.link import (
    LISTEN_ENV,
    READY_PREFIX,
    ComponentContext,
    ComponentLink,
    ComponentState,
    ComponentStats,
    SessionEnded,
    sdk_command,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "LISTEN_ENV",
    "READY_PREFIX",
    "ComponentContext",
    "ComponentLink",
    "ComponentState",
    "ComponentStats",
    "ComponentsService",
    "SessionEnded",
    "discover",
    "resolve_specs",
    "sdk_command",
]
