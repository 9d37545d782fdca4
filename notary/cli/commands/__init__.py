"""One module per `notary` command (group): thin click wrappers over the library, loaded lazily by
notary.cli.main when their command runs."""
