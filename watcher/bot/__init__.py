"""The Telegram front-end over the shared subscription use cases."""
