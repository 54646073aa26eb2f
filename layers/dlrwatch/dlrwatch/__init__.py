"""dlrwatch: delivery tracking for SMS sent through third-party providers."""
