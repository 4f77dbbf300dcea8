"""The option-to-files table stays true to the template tree."""

from bakery.layout import OPTION_FILES

from tests.template import TEMPLATE_ROOT, choice_options

PROJECT_TEMPLATE = TEMPLATE_ROOT / "{{cookiecutter.project_slug | project_dir}}"


def test_every_listed_path_exists_in_the_template() -> None:
    missing = [
        path
        for files_by_value in OPTION_FILES.values()
        for paths in files_by_value.values()
        for path in paths
        if not (
            PROJECT_TEMPLATE / path.format(package_name="{{cookiecutter.package_name}}")
        ).exists()
    ]
    assert missing == []


def test_every_option_and_value_in_the_table_is_a_real_choice() -> None:
    options = choice_options()
    for option, files_by_value in OPTION_FILES.items():
        assert option in options
        assert set(files_by_value) <= set(options[option])
