"""Training: recipes, the fit loop with its callbacks, saved runs, and the dropout sweep."""

from kerasdrop.training.loop import Run, resolve_recipe, train
from kerasdrop.training.recipe import Recipe, RecipeError, load_recipe

__all__ = ["Recipe", "RecipeError", "Run", "load_recipe", "resolve_recipe", "train"]
