"""Watching a model after training: the reference profile of its training data, logged with
the registered version (`profile`), and the drift of what it scores against it (`drift`)."""
