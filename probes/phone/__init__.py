"""The phone channel: a Twilio call that walks the IVR and listens through speech turns."""

from probes.phone.channel import PHONE

__all__ = ["PHONE"]
