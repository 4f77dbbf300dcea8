"""Logic behind the template's hooks: answer validation, file selection, quoting filters."""
