"""The sandbox chat site: a support page whose widget talks to agents and a bot over WebSocket."""
