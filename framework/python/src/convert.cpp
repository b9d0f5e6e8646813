#include "convert.hpp"

#include <gmp.h>

#include <memory>
#include <vector>

namespace mathpool::python {
namespace {

namespace py = pybind11;

// Deeper values are refused (the worker protocol's own limit, 200 levels).
constexpr int kMaxDepth = 200;

[[noreturn]] void raise() { throw py::error_already_set(); }

PyObject* checked(PyObject* object) {
  if (!object) raise();
  return object;
}

struct Ref {  // owns one reference
  PyObject* p;
  explicit Ref(PyObject* object) : p(checked(object)) {}
  ~Ref() { Py_XDECREF(p); }
  Ref(const Ref&) = delete;
  Ref& operator=(const Ref&) = delete;
  PyObject* release() {
    PyObject* r = p;
    p = nullptr;
    return r;
  }
};

struct Mpz {
  mpz_t z;
  Mpz() { mpz_init(z); }
  ~Mpz() { mpz_clear(z); }
};

// Python int (any size) -> decimal text, without the interpreter's limit on
// int-to-str conversion (sys.set_int_max_str_digits).
std::string decimal_of(PyObject* integer) {
  const int sign = PyObject_RichCompareBool(integer, Ref(PyLong_FromLong(0)).p, Py_LT);
  if (sign < 0) raise();
  Ref magnitude(PyNumber_Absolute(integer));
  Ref bits(PyObject_CallMethod(magnitude.p, "bit_length", nullptr));
  const Py_ssize_t nbits = PyLong_AsSsize_t(bits.p);
  if (nbits < 0) raise();
  const Py_ssize_t nbytes = (nbits + 7) / 8;
  Ref bytes(PyObject_CallMethod(magnitude.p, "to_bytes", "ns", nbytes, "little"));
  Mpz z;
  mpz_import(z.z, std::size_t(nbytes), -1, 1, 0, 0, PyBytes_AS_STRING(bytes.p));
  std::string text(mpz_sizeinbase(z.z, 10) + 2, '\0');
  mpz_get_str(text.data(), 10, z.z);
  text.resize(std::char_traits<char>::length(text.c_str()));
  return sign ? "-" + text : text;
}

// Decimal text -> Python int (any size).
PyObject* integer_of(const std::string& text) {
  Mpz z;
  if (mpz_set_str(z.z, text.c_str(), 10) != 0) {
    PyErr_Format(PyExc_ValueError, "mathpool: a big integer's text is not decimal: %.40s", text.c_str());
    raise();
  }
  const bool negative = mpz_sgn(z.z) < 0;
  mpz_abs(z.z, z.z);
  std::size_t count = 0;
  std::vector<unsigned char> buffer((mpz_sizeinbase(z.z, 2) + 7) / 8 + 1);
  mpz_export(buffer.data(), &count, -1, 1, 0, 0, z.z);
  Ref bytes(PyBytes_FromStringAndSize(reinterpret_cast<const char*>(buffer.data()), Py_ssize_t(count)));
  Ref magnitude(PyObject_CallMethod(reinterpret_cast<PyObject*>(&PyLong_Type), "from_bytes", "Os", bytes.p, "little"));
  return negative ? checked(PyNumber_Negative(magnitude.p)) : magnitude.release();
}

class ToValue {
 public:
  explicit ToValue(std::string what) : what_(std::move(what)) {}

  void convert(PyObject* object, Value& out, int depth) {
    if (object == Py_None) {
      out = nullptr;
    } else if (PyBool_Check(object)) {
      out = object == Py_True;
    } else if (PyLong_Check(object)) {
      integer(object, out);
    } else if (PyFloat_Check(object)) {
      out = PyFloat_AS_DOUBLE(object);
    } else if (PyUnicode_Check(object)) {
      Py_ssize_t size = 0;
      const char* text = PyUnicode_AsUTF8AndSize(object, &size);
      if (!text) {
        PyErr_Clear();
        fail(PyExc_ValueError, "is a str that is not valid Unicode (lone surrogates)");
      }
      out = std::string(text, std::size_t(size));
    } else if (PyDict_Check(object)) {
      if (depth >= kMaxDepth) too_deep();
      out = Value::object();
      auto& map = out.get_ref<Value::object_t&>();
      map.reserve(std::size_t(PyDict_GET_SIZE(object)));
      PyObject *key, *item;
      Py_ssize_t pos = 0;
      while (PyDict_Next(object, &pos, &key, &item)) {
        if (!PyUnicode_Check(key)) {
          path_.push_back({nullptr, 0, -1});
          fail(PyExc_TypeError, "has a key that is not a str ({}); dict keys must be str", key);
        }
        Py_ssize_t size = 0;
        const char* text = PyUnicode_AsUTF8AndSize(key, &size);
        if (!text) {
          PyErr_Clear();
          fail(PyExc_ValueError, "has a key that is not valid Unicode");
        }
        // Keys of a dict are distinct: append without ordered_map's search.
        static_cast<std::vector<std::pair<const std::string, Value>>&>(map).emplace_back(
            std::string(text, std::size_t(size)), Value());
        path_.push_back({text, size, -1});
        convert(item, map.back().second, depth + 1);
        path_.pop_back();
      }
    } else if (PyList_Check(object) || PyTuple_Check(object)) {
      if (depth >= kMaxDepth) too_deep();
      const bool list = PyList_Check(object);
      const Py_ssize_t n = list ? PyList_GET_SIZE(object) : PyTuple_GET_SIZE(object);
      out = Value::array();
      auto& array = out.get_ref<Value::array_t&>();
      array.resize(std::size_t(n));
      for (Py_ssize_t i = 0; i < n; ++i) {
        path_.push_back({nullptr, 0, i});
        // A list may change while it is read (a callback): index it afresh.
        if (list && i >= PyList_GET_SIZE(object)) fail(PyExc_RuntimeError, "changed size while being converted");
        convert(list ? PyList_GET_ITEM(object, i) : PyTuple_GET_ITEM(object, i), array[std::size_t(i)], depth + 1);
        path_.pop_back();
      }
    } else if (PyBytes_Check(object)) {
      const auto* p = reinterpret_cast<const std::uint8_t*>(PyBytes_AS_STRING(object));
      out = Value::binary(Value::binary_t::container_type(p, p + PyBytes_GET_SIZE(object)));
    } else if (PyByteArray_Check(object)) {
      const auto* p = reinterpret_cast<const std::uint8_t*>(PyByteArray_AS_STRING(object));
      out = Value::binary(Value::binary_t::container_type(p, p + PyByteArray_GET_SIZE(object)));
    } else if (PyIndex_Check(object)) {  // Sage's Integer, numpy's integers, ...
      PyObject* index = PyNumber_Index(object);
      if (!index) {
        PyErr_Clear();
        unsupported(object);
      }
      Ref owned(index);
      integer(index, out);
    } else {
      unsupported(object);
    }
  }

 private:
  struct Segment {
    const char* key;  // a dict key, or nullptr for a list index (or an unnamed key)
    Py_ssize_t size;
    Py_ssize_t index;
  };

  void integer(PyObject* object, Value& out) {
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(object, &overflow);
    if (overflow == 0) {
      if (v == -1 && PyErr_Occurred()) raise();
      out = std::int64_t(v);
      return;
    }
    if (overflow > 0) {
      const unsigned long long u = PyLong_AsUnsignedLongLong(object);
      if (!(u == static_cast<unsigned long long>(-1) && PyErr_Occurred())) {
        out = std::uint64_t(u);
        return;
      }
      PyErr_Clear();
    }
    out = big_integer(decimal_of(object));
  }

  std::string path() const {
    std::string text;
    for (const Segment& s : path_) {
      if (s.key) {
        if (!text.empty()) text += '.';
        text.append(s.key, std::size_t(s.size));
      } else if (s.index >= 0) {
        text += "[" + std::to_string(s.index) + "]";
      }
    }
    return text;
  }

  std::string subject() const {
    const std::string p = path();
    return p.empty() ? what_ : what_ + " '" + p + "'";
  }

  [[noreturn]] void fail(PyObject* type, const char* why, PyObject* shown = nullptr) {
    std::string message = "mathpool: " + subject() + " " + why;
    if (shown) {
      const auto at = message.find("{}");
      PyObject* r = PyObject_Repr(shown);
      std::string repr = "?";
      if (r) {
        const char* t = PyUnicode_AsUTF8(r);
        if (t) repr = std::string(t).substr(0, 60);
        Py_DECREF(r);
      }
      PyErr_Clear();
      if (at != std::string::npos) message.replace(at, 2, repr);
    }
    PyErr_SetString(type, message.c_str());
    raise();
  }

  [[noreturn]] void too_deep() { fail(PyExc_ValueError, "is nested deeper than 200 levels"); }

  [[noreturn]] void unsupported(PyObject* object) {
    std::string message = "mathpool: " + subject() + " is a " + Py_TYPE(object)->tp_name +
                          ", which mathpool cannot pass: use int, float, str, bytes, bool, None, list, tuple, "
                          "dict, or an object with __index__ (pass a finite-field element as its integer "
                          "encoding)";
    PyErr_SetString(PyExc_TypeError, message.c_str());
    raise();
  }

  std::string what_;
  std::vector<Segment> path_;
};

}  // namespace

Value to_value(PyObject* object, const std::string& what) {
  Value out;
  ToValue(what).convert(object, out, 0);
  return out;
}

Value params_to_value(PyObject* params) {
  if (params == Py_None) return Value::object();
  if (!PyDict_Check(params)) {
    PyErr_Format(PyExc_TypeError, "mathpool: a task's parameters must be a dict, got %s", Py_TYPE(params)->tp_name);
    raise();
  }
  Value out;
  ToValue("parameter").convert(params, out, 0);
  return out;
}

PyObject* from_value(const Value& v) {
  switch (v.type()) {
    case Value::value_t::null:
      Py_RETURN_NONE;
    case Value::value_t::boolean:
      if (v.get<bool>()) Py_RETURN_TRUE;
      Py_RETURN_FALSE;
    case Value::value_t::number_integer:
      return checked(PyLong_FromLongLong(v.get<std::int64_t>()));
    case Value::value_t::number_unsigned:
      return checked(PyLong_FromUnsignedLongLong(v.get<std::uint64_t>()));
    case Value::value_t::number_float:
      return checked(PyFloat_FromDouble(v.get<double>()));
    case Value::value_t::string: {
      const auto& s = v.get_ref<const std::string&>();
      return checked(PyUnicode_DecodeUTF8(s.data(), Py_ssize_t(s.size()), "replace"));
    }
    case Value::value_t::binary: {
      if (is_big_integer(v)) return integer_of(big_integer_text(v));
      const auto& b = v.get_binary();
      return checked(PyBytes_FromStringAndSize(reinterpret_cast<const char*>(b.data()), Py_ssize_t(b.size())));
    }
    case Value::value_t::array: {
      Ref list(PyList_New(Py_ssize_t(v.size())));
      Py_ssize_t i = 0;
      for (const Value& item : v) PyList_SET_ITEM(list.p, i++, from_value(item));
      return list.release();
    }
    case Value::value_t::object: {
      Ref dict(PyDict_New());
      for (const auto& [key, item] : v.get_ref<const Value::object_t&>()) {
        Ref k(PyUnicode_DecodeUTF8(key.data(), Py_ssize_t(key.size()), "replace"));
        Ref value(from_value(item));
        if (PyDict_SetItem(dict.p, k.p, value.p) < 0) raise();
      }
      return dict.release();
    }
    case Value::value_t::discarded:
      break;
  }
  Py_RETURN_NONE;
}

}  // namespace mathpool::python
