// TOML subset reader/writer (see toml.h).
#include "apps/lib/toml.h"

#include <cctype>
#include <fstream>
#include <sstream>

#include "tensor/error.h"

namespace okd::apps {

namespace {
std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r"), e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// Removes a trailing comment that is not inside a string.
std::string strip_comment(const std::string& s) {
  bool in_str = false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '"' && (i == 0 || s[i - 1] != '\\')) in_str = !in_str;
    if (s[i] == '#' && !in_str) return s.substr(0, i);
  }
  return s;
}

std::string parse_value(const std::string& raw, const std::string& where) {
  std::string v = trim(raw);
  OKD_CHECK(!v.empty(), where, ": missing value");
  if (v.front() == '"') {
    OKD_CHECK(v.size() >= 2 && v.back() == '"', where, ": unterminated string ", v);
    std::string out;
    for (size_t i = 1; i + 1 < v.size(); ++i) {
      if (v[i] == '\\' && i + 2 < v.size()) ++i;
      out += v[i];
    }
    return out;
  }
  if (v.front() == '[') {
    OKD_CHECK(v.back() == ']', where, ": unterminated array ", v);
    std::string inner = v.substr(1, v.size() - 2), out, item;
    std::stringstream ss(inner);
    bool first = true;
    while (std::getline(ss, item, ',')) {
      item = trim(item);
      if (item.empty()) continue;
      out += (first ? "" : ",") + parse_value(item, where);
      first = false;
    }
    return out;
  }
  return v;  // number or boolean, kept as written
}
}  // namespace

ConfigMap parse_toml(const std::string& text, const std::string& source) {
  ConfigMap out;
  std::string table, line;
  std::stringstream ss(text);
  int lineno = 0;
  while (std::getline(ss, line)) {
    ++lineno;
    std::string where = source + ":" + std::to_string(lineno);
    std::string l = trim(strip_comment(line));
    if (l.empty()) continue;
    if (l.front() == '[') {
      OKD_CHECK(l.back() == ']', where, ": malformed table header '", l, "'");
      table = trim(l.substr(1, l.size() - 2));
      continue;
    }
    size_t eq = l.find('=');
    OKD_CHECK(eq != std::string::npos, where, ": expected 'key = value', got '", l, "'");
    std::string key = trim(l.substr(0, eq));
    if (key.size() >= 2 && key.front() == '"' && key.back() == '"')
      key = key.substr(1, key.size() - 2);
    OKD_CHECK(!key.empty(), where, ": empty key");
    std::string full = table.empty() ? key : table + "." + key;
    OKD_CHECK(!out.count(full), where, ": key '", full, "' appears twice");
    out[full] = parse_value(l.substr(eq + 1), where);
  }
  return out;
}

ConfigMap read_toml_file(const std::string& path) {
  std::ifstream f(path);
  OKD_CHECK(f.good(), "config: cannot read ", path);
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_toml(ss.str(), path);
}

std::string to_toml(const ConfigMap& values) {
  auto literal = [](const std::string& v) {
    if (v == "true" || v == "false") return v;
    char* end = nullptr;
    std::strtod(v.c_str(), &end);
    if (!v.empty() && end && *end == '\0') return v;
    std::string q = "\"";
    for (char c : v) {
      if (c == '"' || c == '\\') q += '\\';
      q += c;
    }
    return q + "\"";
  };
  std::ostringstream os;
  std::map<std::string, ConfigMap> tables;
  for (const auto& [k, v] : values) {
    size_t dot = k.find('.');
    if (dot == std::string::npos)
      os << k << " = " << literal(v) << "\n";
    else
      tables[k.substr(0, dot)][k.substr(dot + 1)] = v;
  }
  for (const auto& [t, kv] : tables) {
    os << "\n[" << t << "]\n";
    for (const auto& [k, v] : kv) os << k << " = " << literal(v) << "\n";
  }
  return os.str();
}

}  // namespace okd::apps
