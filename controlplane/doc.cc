#include "controlplane/doc.h"

#include <cstdio>
#include <set>

namespace veil::doc {

std::string json_escape(const std::string& s) {
  std::string o;
  o.reserve(s.size() + 2);
  for (unsigned char c : s) {
    switch (c) {
      case '"': o += "\\\""; break;
      case '\\': o += "\\\\"; break;
      case '\n': o += "\\n"; break;
      case '\t': o += "\\t"; break;
      case '\r': o += "\\r"; break;
      default:
        if (c < 0x20) {
          char b[8];
          std::snprintf(b, sizeof b, "\\u%04x", c);
          o += b;
        } else {
          o += char(c);
        }
    }
  }
  return o;
}

namespace {

std::string scalar(const Value& v) {
  struct {
    std::string operator()(std::monostate) { return "-"; }
    std::string operator()(bool b) { return b ? "yes" : "no"; }
    std::string operator()(int64_t i) { return std::to_string(i); }
    std::string operator()(uint64_t u) { return std::to_string(u); }
    std::string operator()(double d) {
      char b[32];
      std::snprintf(b, sizeof b, "%.3f", d);
      return b;
    }
    std::string operator()(const std::string& s) { return s; }
    std::string operator()(const Array& a) { return "[" + std::to_string(a.size()) + " items]"; }
    std::string operator()(const Object&) { return "{...}"; }
  } vis;
  return std::visit(vis, v.v);
}

void json(const Value& v, std::string& o) {
  if (std::holds_alternative<std::monostate>(v.v)) {
    o += "null";
  } else if (auto* b = std::get_if<bool>(&v.v)) {
    o += *b ? "true" : "false";
  } else if (auto* i = std::get_if<int64_t>(&v.v)) {
    o += std::to_string(*i);
  } else if (auto* u = std::get_if<uint64_t>(&v.v)) {
    o += std::to_string(*u);
  } else if (auto* d = std::get_if<double>(&v.v)) {
    char b[32];
    std::snprintf(b, sizeof b, "%.6g", *d);
    o += b;
  } else if (auto* s = std::get_if<std::string>(&v.v)) {
    o += '"' + json_escape(*s) + '"';
  } else if (auto* a = std::get_if<Array>(&v.v)) {
    o += '[';
    for (size_t k = 0; k < a->size(); ++k) {
      if (k) o += ',';
      json((*a)[k], o);
    }
    o += ']';
  } else if (auto* ob = std::get_if<Object>(&v.v)) {
    o += '{';
    for (size_t k = 0; k < ob->size(); ++k) {
      if (k) o += ',';
      o += '"' + json_escape((*ob)[k].first) + "\":";
      json((*ob)[k].second, o);
    }
    o += '}';
  }
}

void text(const Value& v, std::string& o, const std::string& indent);

void table(const Array& rows, std::string& o, const std::string& indent) {
  std::vector<std::string> cols;
  std::set<std::string> seen;
  for (const auto& r : rows)
    if (auto* ob = std::get_if<Object>(&r.v))
      for (const auto& [k, val] : *ob)
        if (!val.is_object() && !val.is_array() && seen.insert(k).second) cols.push_back(k);
  std::vector<std::vector<std::string>> cells;
  std::vector<size_t> w(cols.size());
  for (size_t c = 0; c < cols.size(); ++c) w[c] = cols[c].size();
  for (const auto& r : rows) {
    std::vector<std::string> line(cols.size(), "-");
    if (auto* ob = std::get_if<Object>(&r.v))
      for (const auto& [k, val] : *ob)
        for (size_t c = 0; c < cols.size(); ++c)
          if (cols[c] == k) line[c] = scalar(val);
    for (size_t c = 0; c < cols.size(); ++c) w[c] = std::max(w[c], line[c].size());
    cells.push_back(std::move(line));
  }
  auto emit = [&](const std::vector<std::string>& line) {
    o += indent;
    for (size_t c = 0; c < line.size(); ++c) {
      o += line[c];
      if (c + 1 < line.size()) o += std::string(w[c] - line[c].size() + 2, ' ');
    }
    o += '\n';
  };
  std::vector<std::string> head;
  for (auto c : cols) {
    for (auto& ch : c) ch = char(std::toupper(static_cast<unsigned char>(ch)));
    head.push_back(c);
  }
  emit(head);
  for (const auto& line : cells) emit(line);
}

void text(const Value& v, std::string& o, const std::string& indent) {
  if (auto* ob = std::get_if<Object>(&v.v)) {
    size_t w = 0;
    for (const auto& [k, val] : *ob) w = std::max(w, k.size());
    for (const auto& [k, val] : *ob) {
      if (val.is_object()) {
        o += indent + k + ":\n";
        text(val, o, indent + "  ");
      } else if (val.is_array()) {
        o += indent + k + ":\n";
        text(val, o, indent + "  ");
      } else {
        o += indent + k + ":" + std::string(w - k.size() + 1, ' ') + scalar(val) + "\n";
      }
    }
  } else if (auto* a = std::get_if<Array>(&v.v)) {
    bool objects = !a->empty() && (*a)[0].is_object();
    if (objects) {
      table(*a, o, indent);
    } else if (a->empty()) {
      o += indent + "(none)\n";
    } else {
      for (const auto& e : *a) o += indent + scalar(e) + "\n";
    }
  } else {
    o += indent + scalar(v) + "\n";
  }
}

}  // namespace

std::string to_json(const Value& v) {
  std::string o;
  json(v, o);
  return o;
}

std::string to_text(const Value& v) {
  std::string o;
  text(v, o, "");
  return o;
}

}  // namespace veil::doc
