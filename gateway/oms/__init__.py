"""Order management: the one service every order passes through (submit, amend, cancel, fill)."""
