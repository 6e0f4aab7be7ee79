"""One module per CLI command, imported only when that command runs (keeps --help fast)."""
