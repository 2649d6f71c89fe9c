"""The sandbox's Twilio-compatible API (Calls, Messages), validated against the official spec."""
