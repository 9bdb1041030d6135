"""package: import the evaluated model, its threshold and metrics into the BentoML store."""

import logging

from phishguard.entrypoint import run
from phishguard.packaging import package_model

log = logging.getLogger("package")


def main() -> None:
    folder = package_model()
    log.info("packaged %s", folder)


if __name__ == "__main__":
    run(main, "package")
