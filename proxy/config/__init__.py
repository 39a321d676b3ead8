"""Configuration: the settings and where they come from (TOML file, environment, flags),
the model table, and who may call the bridge with which key."""
