"""The generic messaging channel: any platform with a send API and a signed reply webhook."""

from probes.generic.channel import GENERIC

__all__ = ["GENERIC"]
