"""The SMS and WhatsApp channels, through Twilio's Messages API."""

from probes.messaging.channel import SMS, WHATSAPP

__all__ = ["SMS", "WHATSAPP"]
