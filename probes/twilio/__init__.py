"""What the phone and messaging channels share: the Twilio account and its HTTP client."""
