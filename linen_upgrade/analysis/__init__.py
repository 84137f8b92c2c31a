"""What the rules ask about the run, beneath them: which file a name is
(``identity``)."""
