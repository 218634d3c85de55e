"""Training: recipes, the fit loop with its callbacks, saved runs, and the dropout sweep."""

from kerasdrop.train.loop import Run, resolve_recipe, train
from kerasdrop.train.recipe import Recipe, RecipeError, load_recipe

__all__ = ["Recipe", "RecipeError", "Run", "load_recipe", "resolve_recipe", "train"]

from kerasdrop._callable_module import make_module_callable  # noqa: E402

# `kerasdrop.train(...)` calls `train`; `kerasdrop.train.<name>` still reaches the package.
make_module_callable(__name__, train)
