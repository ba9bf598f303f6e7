"""neurond: the software Inferentia2 device daemon."""
