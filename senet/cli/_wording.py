"""Library wording in an error the command line prints, named as the command line's flags.

The library's messages name its keyword arguments (``identity_init=False``, ``where=``) and functions
(``senet.list_models()``); a user of ``senet`` typed flags, so the command line says those instead.
"""

from __future__ import annotations

# (command, commands or None for every command; the library's words; the command line's words)
_REWORDS: tuple[tuple[str | tuple[str, ...] | None, str, str], ...] = (
    ("retrofit", "(use identity_init=False)", "(use --no-identity-init)"),
    ("retrofit", "identity_init supports", "starting as the identity (the default) supports"),
    ("retrofit", "identity_init needs", "starting as the identity (the default) needs"),
    ("retrofit", "choose places with where=", "choose places with --where"),
    # train/compare --retrofit always start as the identity (fine-tuning starts at the checkpoint's accuracy)
    (("train", "compare"), " (use identity_init=False)", ""),
    (("train", "compare"), "identity_init supports", "starting as the identity supports"),
    ("bench", "threads must be", "--threads must be"),
    (("demo", "profile", "train", "compare", "retrofit", "export", "analyze", "eval"), "reduction must be",
     "--reduction must be"),
    ("retrofit", "where: '", "--where '"),
    ("bench", "repeats must be", "--repeats must be"),
    ("bench", "device must be", "--device must be"),
    ("bench", "seed must be", "--seed must be"),
    (None, "; see `senet list` or senet.list_models()", "; see `senet list`"),
    # an unreadable image of an image folder: eval and analyze read every image they are given (no --skip-corrupt)
    (("eval", "analyze"), ", or skip unreadable images: skip_corrupt=True, or --skip-corrupt on the command line)",
     ")"),
)


def cli_wording(command: str, message: str) -> str:
    """``message`` with the library's argument names replaced by ``command``'s flags.

    Args:
        command: The ``senet`` command that raised it ('retrofit', 'train', ...).
        message: The error's text.

    Returns:
        The text to print.
    """
    for only, library, flags in _REWORDS:
        if only is None or command == only or (isinstance(only, tuple) and command in only):
            message = message.replace(library, flags)
    return message
