"""The sandbox's generic messaging platform: a bearer-token send API, HMAC-signed webhooks."""
