"""Package discovery, which pyproject.toml alone cannot say: the top-level recipes/ folder
installs inside the package as `adapters_sft.recipes`. Everything else is in pyproject.toml."""
from setuptools import find_namespace_packages, setup

setup(
    # discovery, not a hand list: a new subpackage cannot be left out of the wheel; namespace
    # discovery also takes the data-only folders (datasets/*, plan/configs, ui/static)
    packages=find_namespace_packages(include=["adapters_sft*"]) + ["adapters_sft.recipes"],
    package_dir={"adapters_sft.recipes": "recipes"},
)
