"""Channel drivers. :data:`CHANNEL_TYPES` is the one place the channel kinds are listed."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from probes.base import ChannelType
from probes.email import EMAIL
from probes.generic import GENERIC
from probes.messaging import SMS, WHATSAPP
from probes.phone import PHONE
from probes.webchat import WEBCHAT

#: Each kind's settings and address models differ: outside its package a channel type is
#: reached through :meth:`ChannelType.settings_of` / :meth:`ChannelType.address_of`.
CHANNEL_TYPES: Mapping[str, ChannelType[Any, Any]] = MappingProxyType(
    {kind.kind: kind for kind in (EMAIL, WEBCHAT, PHONE, SMS, WHATSAPP, GENERIC)}
)

__all__ = ["CHANNEL_TYPES", "ChannelType"]
