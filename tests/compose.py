"""Compose the project's Hydra config in tests, the way the CLI does."""

from hydra import compose, initialize_config_dir

from conftest import REPO


def compose_train(*overrides: str, config_name: str = "train"):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        return compose(config_name=config_name, overrides=list(overrides))
