// A small document model for management API answers. One value renders both as JSON (for
// scripts, `veilctl --json`) and as text for people, so the CLI and the API cannot disagree.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace veil::doc {

struct Value;
using Array = std::vector<Value>;
using Object = std::vector<std::pair<std::string, Value>>;  // keeps insertion order

struct Value {
  std::variant<std::monostate, bool, int64_t, uint64_t, double, std::string, Array, Object> v;
  Value() = default;
  Value(bool b) : v(b) {}
  Value(int i) : v(int64_t(i)) {}
  Value(int64_t i) : v(i) {}
  Value(uint32_t u) : v(uint64_t(u)) {}
  Value(uint64_t u) : v(u) {}
  Value(double d) : v(d) {}
  Value(const char* s) : v(std::string(s)) {}
  Value(std::string s) : v(std::move(s)) {}
  Value(Array a) : v(std::move(a)) {}
  Value(Object o) : v(std::move(o)) {}
  bool is_object() const { return std::holds_alternative<Object>(v); }
  bool is_array() const { return std::holds_alternative<Array>(v); }
};

std::string to_json(const Value& v);
// Objects as aligned "key: value" lines; arrays of objects as a table with a header row.
std::string to_text(const Value& v);
std::string json_escape(const std::string& s);

}  // namespace veil::doc
