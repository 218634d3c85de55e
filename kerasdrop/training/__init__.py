"""Training: recipes, the fit loop with its callbacks, saved runs, and the dropout sweep."""

from kerasdrop.training.loop import train
from kerasdrop.training.recipe import Recipe, RecipeError, load_recipe, resolve_recipe
from kerasdrop.training.run import Run

__all__ = ["Recipe", "RecipeError", "Run", "load_recipe", "resolve_recipe", "train"]
