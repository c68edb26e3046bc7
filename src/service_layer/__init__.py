"""The use cases: each write is a command on an application, then read-your-writes, then
the read that answers it, in one place, so every entry point (the JSON API, the web UI, the
CLI and the SDK) runs the same code."""
