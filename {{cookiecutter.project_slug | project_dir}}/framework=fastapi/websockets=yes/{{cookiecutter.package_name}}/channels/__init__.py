"""Real-time channels: WebSocket clients join named channels; Redis carries the messages between
workers and pods (README, "Real-time channels")."""
