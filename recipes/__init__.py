"""The shipped recipes, one YAML file each, named by their path without `.yaml`
(`smollm2-135m/lora`). This folder installs as the package `adapters_sft.recipes` (setup.py maps
it), so a checkout and a wheel find the recipes the same way: recipe.recipes_root()."""
