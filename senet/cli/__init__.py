"""The ``senet`` command line: thin entries over library functions, one file per command."""
