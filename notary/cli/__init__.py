"""The command line: the only part of notary that prints or reads flags."""
