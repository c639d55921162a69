"""One module per ``longitudinal-al`` subcommand (see ``cli.COMMANDS``)."""
