// convert.hpp: Python objects to mathpool Values and back, exactly:
// int of any size, float (nan and inf too), str, bytes, bool, None, list
// (tuples become lists), dict with str keys; objects with __index__ (Sage's
// Integer, numpy's integers) as integers. Anything else is a TypeError
// naming the parameter's path. Integers past 64 bits travel as SDK big
// integers (mathpool/value.hpp).
#pragma once

#define PY_SSIZE_T_CLEAN
#include <pybind11/pybind11.h>

#include <string>

#include "mathpool/value.hpp"

namespace mathpool::python {

// A task's parameters: a dict (or None, for no parameters). Throws
// pybind11::error_already_set (TypeError or ValueError naming the key).
Value params_to_value(PyObject* params);
// Any value; `what` names the root in messages (e.g. "pool option").
Value to_value(PyObject* object, const std::string& what);
// A new reference. Throws pybind11::error_already_set.
PyObject* from_value(const Value& value);

}  // namespace mathpool::python
