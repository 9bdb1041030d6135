"""package: import the evaluated model, its threshold and metrics into the BentoML store, and
give its registered MLflow version the alias `champion`."""

import logging

from phishguard.entrypoint import run
from phishguard.modeling.package import package_model
from phishguard.modeling.tracking import set_champion

log = logging.getLogger("package")


def main() -> None:
    folder = package_model()
    log.info("packaged %s", folder)
    set_champion(folder.name)  # the folder's name is the package's content-derived version


if __name__ == "__main__":
    run(main, "package")
