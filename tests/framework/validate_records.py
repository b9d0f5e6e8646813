#!/usr/bin/env python3
"""Validates JSON Lines records against docs/record.schema.json (draft 2020-12).

usage: validate_records.py SCHEMA FILE [--invalid]
Exits 0 when every line of FILE is valid (with --invalid: when every line is
invalid), 1 otherwise, naming the offending lines. Uses Debian's
python3-jsonschema (installed by .ci/setup).
"""
import json
import sys

from jsonschema import Draft202012Validator


def main():
    schema_file, records_file = sys.argv[1], sys.argv[2]
    expect_invalid = "--invalid" in sys.argv[3:]
    with open(schema_file) as f:
        schema = json.load(f)
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    bad = 0
    with open(records_file) as f:
        for number, line in enumerate(f, 1):
            errors = list(validator.iter_errors(json.loads(line)))
            if expect_invalid and not errors:
                print(f"{records_file}:{number}: valid, but should not be: {line.strip()}")
                bad += 1
            if not expect_invalid and errors:
                print(f"{records_file}:{number}: {errors[0].message} at {list(errors[0].absolute_path)}")
                bad += 1
    print(f"{records_file}: {bad} unexpected")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
