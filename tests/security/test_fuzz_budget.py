"""The abuse tests' example budget: at least 10,000 Hypothesis examples in CI
(HYPOTHESIS_EXAMPLES=2000), counted from each fuzz test's own settings."""

import inspect

from tests.deployments import test_form_fuzz, test_import_fuzz
from tests.security import test_get_fuzz, test_post_fuzz, test_post_fuzz_accounts
from tests.security.fuzzing import EXAMPLES

MODULES = (test_form_fuzz, test_import_fuzz, test_post_fuzz, test_post_fuzz_accounts, test_get_fuzz)


def fuzz_tests():
    for module in MODULES:
        for name, test in inspect.getmembers(module, inspect.isfunction):
            settings = getattr(test, "_hypothesis_internal_use_settings", None)
            if name.startswith("test_") and settings is not None:
                yield f"{module.__name__.rsplit('.', 1)[-1]}::{name}", settings.max_examples


def test_it_runs_five_times_hypothesis_examples_in_total():
    """5 x HYPOTHESIS_EXAMPLES: 10,000 examples when CI sets 2000."""
    budget = dict(fuzz_tests())
    assert len(budget) >= 16, budget
    assert sum(budget.values()) >= 5 * EXAMPLES, budget


def test_every_post_endpoint_has_its_own_fuzz_test():
    names = {name.replace("_accounts::", "::") for name, _ in fuzz_tests()}
    for endpoint in (
        "clone",
        "delete",
        "formset_rows",
        "blur_validation",
        "deploy",
        "cancel",
        "rollback",
        "cluster_check",
        "login",
        "password_change",
        "admin_profile_change",
        "admin_cluster_add",
    ):
        assert f"test_post_fuzz::test_{endpoint}" in names
    assert "test_form_fuzz::test_it_survives_hostile_profile_posts" in names  # new, edit
    assert "test_form_fuzz::test_it_survives_hostile_yaml_uploads" in names  # import
