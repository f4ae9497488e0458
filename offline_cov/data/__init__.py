"""Data: reading datasets in every supported format and shape (`readers`), and deciding which of
their samples a run analyzes (`plan`)."""
