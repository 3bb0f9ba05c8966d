"""Front ends: the CLI, the shell and the web app, all over the same use cases."""
