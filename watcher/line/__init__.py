"""The LINE chat front-end: LINE's signed webhook in, replies out through the reply API.

`signature` verifies a request before anything reads it, `events` turns its body into typed
events, `commands` reads what a user typed (Japanese or English), `texts` holds what the bot
says, `bot` ties them together and `webhook` is the HTTP endpoint (`/line/webhook` on
`settings.server.listen`). What the bot asks of the database is `storage.interface.LineChatStore`.
"""
