"""Channel drivers. :data:`CHANNEL_TYPES` is the one place the channel kinds are listed."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from probes.base import ChannelType
from probes.email import EMAIL
from probes.generic import GENERIC
from probes.messaging import SMS, WHATSAPP
from probes.phone import PHONE
from probes.webchat import WEBCHAT

CHANNEL_TYPES: Mapping[str, ChannelType] = MappingProxyType(
    {kind.kind: kind for kind in (EMAIL, WEBCHAT, PHONE, SMS, WHATSAPP, GENERIC)}
)

__all__ = ["CHANNEL_TYPES", "ChannelType"]
