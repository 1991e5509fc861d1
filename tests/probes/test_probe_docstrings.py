"""The docstring Examples of tfemergent.probes and of binned_entropy run and give what they show."""

import importlib

import pytest
from docstring_examples import assert_docstring_examples

MODULES = [
    "tfemergent.analysis.entropy",
    "tfemergent.probes.logistic_regression_probe",
]


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples(module_name):
    module = importlib.import_module(module_name)
    assert_docstring_examples(module)


def test_public_api():
    from tfemergent import analysis, probes

    assert probes.__all__ == ["LogisticRegressionProbe"]
    assert "binned_entropy" in analysis.__all__
    for value in (probes.LogisticRegressionProbe, analysis.binned_entropy):
        assert value.__doc__ and "Example:" in value.__doc__
