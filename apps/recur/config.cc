#include "config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "recur/core/error.h"

namespace recur::cli {
namespace {

const char* type_name(ValueType t) {
  switch (t) {
    case ValueType::Int: return "an integer";
    case ValueType::Float: return "a number";
    case ValueType::Bool: return "a boolean (true/false/yes/no/1/0)";
    case ValueType::String: return "a string";
    case ValueType::IntList: return "a list of integers";
  }
  return "?";
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

bool parse_int(std::string s, int64_t& out) {
  s = trim(s);
  // from_chars rejects a leading '+', which users write for exponents and offsets alike.
  if (s.size() > 1 && s[0] == '+' && s[1] != '-') s.erase(0, 1);
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return !s.empty() && ec == std::errc() && end == s.data() + s.size();
}

bool parse_float(std::string s, double& out) {
  s = trim(s);
  if (s.size() > 1 && s[0] == '+' && s[1] != '-') s.erase(0, 1);
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return !s.empty() && ec == std::errc() && end == s.data() + s.size() && std::isfinite(out);
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// Scalars and lists as JSON text: "128", "true", "[1,2]"; strings unquoted for messages.
template <typename V>
std::string value_text(const V& value) {
  return std::visit([](const auto& x) { return nlohmann::json(x).dump(); }, value);
}

std::string yaml_where(const std::string& name, const YAML::Mark& mark) {
  return fmt::format("{}:{}", name, mark.line + 1);
}

}  // namespace

Config::Config(std::vector<ConfigKey> schema) : schema_(std::move(schema)) {
  for (size_t i = 0; i < schema_.size(); ++i) {
    const ConfigKey& k = schema_[i];
    bool well_formed = !k.key.empty() && k.key.front() != '.' && k.key.back() != '.' &&
                       k.key.find("..") == std::string::npos;
    for (char c : k.key)
      well_formed = well_formed && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.');
    RECUR_CHECK(well_formed, "config schema: malformed key '{}'", k.key);
    RECUR_CHECK(index_.emplace(k.key, i).second, "config schema: key '{}' declared twice", k.key);
    RECUR_CHECK(!k.doc.empty() && k.doc.find('\n') == std::string::npos,
                "config schema: key '{}' needs a one-line doc", k.key);
  }
  for (const ConfigKey& k : schema_)
    RECUR_CHECK(!is_section(k.key), "config schema: '{}' is both a key and a section", k.key);
  for (const ConfigKey& k : schema_) {
    const std::string where = "schema of '" + k.key + "'";
    choices_.emplace_back();
    for (const std::string& c : k.choices) choices_.back().push_back(parse_text(k, c, where));
    values_.emplace_back();
    store(values_.size() - 1, parse_text(k, k.default_value, where + " (default)"), where);
  }
}

bool Config::is_section(const std::string& prefix) const {
  // Keys sharing `prefix + "."` sort right after `prefix + "."` itself.
  auto it = index_.lower_bound(prefix + ".");
  return it != index_.end() && it->first.compare(0, prefix.size() + 1, prefix + ".") == 0;
}

Config::Value Config::parse_text(const ConfigKey& spec, const std::string& text,
                                 const std::string& where) const {
  auto bad = [&]() -> Value {
    RECUR_FAIL("{}: expected {}, got '{}' ({})", spec.key, type_name(spec.type), text, where);
  };
  switch (spec.type) {
    case ValueType::Int: {
      int64_t v;
      return parse_int(text, v) ? Value(v) : bad();
    }
    case ValueType::Float: {
      double v;
      return parse_float(text, v) ? Value(v) : bad();
    }
    case ValueType::Bool: {
      std::string s = trim(text);
      std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
      if (s == "true" || s == "yes" || s == "1") return true;
      if (s == "false" || s == "no" || s == "0") return false;
      return bad();
    }
    case ValueType::String: return text;
    case ValueType::IntList: {
      std::string s = trim(text);
      if (s.size() >= 2 && s.front() == '[' && s.back() == ']') s = trim(s.substr(1, s.size() - 2));
      std::vector<int64_t> list;
      std::stringstream in(s);
      std::string item;
      while (!s.empty() && std::getline(in, item, ',')) {
        int64_t v;
        if (!parse_int(item, v)) return bad();
        list.push_back(v);
      }
      // getline drops a trailing empty field, so "1," would otherwise pass as [1].
      if (!s.empty() && s.back() == ',') return bad();
      return list;
    }
  }
  return bad();
}

Config::Value Config::parse_items(const ConfigKey& spec, const std::vector<std::string>& items,
                                  const std::string& where) const {
  RECUR_CHECK(spec.type == ValueType::IntList, "{}: expected {}, got a list ({})", spec.key,
              type_name(spec.type), where);
  std::vector<int64_t> list;
  for (const std::string& item : items) {
    int64_t v;
    RECUR_CHECK(parse_int(item, v), "{}: expected {}, got item '{}' ({})", spec.key,
                type_name(spec.type), item, where);
    list.push_back(v);
  }
  return list;
}

void Config::store(size_t index, Value value, const std::string& where) {
  const ConfigKey& spec = schema_[index];
  const auto& allowed = choices_[index];
  RECUR_CHECK(allowed.empty() || std::find(allowed.begin(), allowed.end(), value) != allowed.end(),
              "{}: '{}' is not one of {} ({})", spec.key,
              std::holds_alternative<std::string>(value) ? std::get<std::string>(value) : value_text(value),
              fmt::join(spec.choices, ", "), where);
  values_[index] = std::move(value);
}

void Config::fail_unknown(const std::string& key, const std::string& where) const {
  std::vector<std::string> candidates;
  for (const ConfigKey& k : schema_) {
    candidates.push_back(k.key);
    for (size_t dot = k.key.find('.'); dot != std::string::npos; dot = k.key.find('.', dot + 1))
      candidates.push_back(k.key.substr(0, dot));
  }
  std::string best;
  size_t best_d = std::string::npos;
  for (const std::string& c : candidates) {
    size_t d = edit_distance(key, c);
    if (d < best_d) best_d = d, best = c;
  }
  std::string hint;
  if (best_d <= 3 || best_d * 3 <= key.size()) {
    hint = fmt::format("; did you mean '{}'?", best);
  } else {
    // A key written at the wrong level ("hidden" for "model.hidden") is far by edit distance.
    const std::string leaf = key.substr(key.rfind('.') + 1);
    for (const ConfigKey& k : schema_)
      if (k.key.size() > leaf.size() && k.key.ends_with("." + leaf)) hint = fmt::format("; did you mean '{}'?", k.key);
  }
  RECUR_FAIL("unknown config key '{}' ({}){}", key, where, hint);
}

void Config::load_yaml_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  RECUR_CHECK(in, "cannot open config file '{}'", path);
  std::stringstream text;
  text << in.rdbuf();
  load_yaml_string(text.str(), path);
}

void Config::load_yaml_string(const std::string& text, const std::string& name) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    RECUR_FAIL("malformed YAML: {} ({})", e.msg, yaml_where(name, e.mark));
  }
  if (root.IsNull()) return;
  RECUR_CHECK(root.IsMap(), "config: expected a map of keys at the top level ({})", yaml_where(name, root.Mark()));
  auto walk = [&](auto& self, const YAML::Node& map, const std::string& prefix) -> void {
    for (auto it = map.begin(); it != map.end(); ++it) {
      const YAML::Node k = it->first;
      const YAML::Node v = it->second;
      RECUR_CHECK(k.IsScalar(), "config: keys must be plain names ({})", yaml_where(name, k.Mark()));
      const std::string key = prefix + k.Scalar();
      auto found = index_.find(key);
      if (found != index_.end()) {
        const ConfigKey& spec = schema_[found->second];
        const std::string where = yaml_where(name, v.Mark());
        if (v.IsSequence()) {
          std::vector<std::string> items;
          for (const YAML::Node& item : v) {
            RECUR_CHECK(item.IsScalar(), "{}: expected {}, got a nested list or map ({})", key,
                        type_name(spec.type), yaml_where(name, item.Mark()));
            items.push_back(item.Scalar());
          }
          store(found->second, parse_items(spec, items, where), where);
        } else {
          RECUR_CHECK(v.IsScalar(), "{}: expected {}, got {} ({})", key, type_name(spec.type),
                      v.IsMap() ? "a map" : "nothing", where);
          store(found->second, parse_text(spec, v.Scalar(), where), where);
        }
      } else if (is_section(key)) {
        RECUR_CHECK(v.IsMap(), "{}: expected a map of '{}.*' keys, got {} ({})", key, key,
                    v.IsSequence() ? "a list" : v.IsNull() ? "nothing" : "'" + v.Scalar() + "'",
                    yaml_where(name, v.Mark()));
        self(self, v, key + ".");
      } else {
        fail_unknown(key, yaml_where(name, k.Mark()));
      }
    }
  };
  // A file that fails halfway must not leave half of its values applied.
  std::vector<Value> saved = values_;
  try {
    walk(walk, root, "");
  } catch (...) {
    values_ = std::move(saved);
    throw;
  }
}

void Config::set(const std::string& assignment) {
  const size_t eq = assignment.find('=');
  RECUR_CHECK(eq != std::string::npos, "--set '{}': expected key=value", assignment);
  const std::string key = trim(assignment.substr(0, eq));
  const std::string where = "--set " + assignment;
  auto found = index_.find(key);
  if (found == index_.end()) fail_unknown(key, where);
  store(found->second, parse_text(schema_[found->second], trim(assignment.substr(eq + 1)), where), where);
}

const Config::Value& Config::value_of(const std::string& key, ValueType type) const {
  auto found = index_.find(key);
  RECUR_CHECK(found != index_.end(), "config: key '{}' is not declared in the schema", key);
  RECUR_CHECK(schema_[found->second].type == type, "config: key '{}' is {}, not {}", key,
              type_name(schema_[found->second].type), type_name(type));
  return values_[found->second];
}

int64_t Config::get_int(const std::string& key) const { return std::get<int64_t>(value_of(key, ValueType::Int)); }
double Config::get_float(const std::string& key) const { return std::get<double>(value_of(key, ValueType::Float)); }
bool Config::get_bool(const std::string& key) const { return std::get<bool>(value_of(key, ValueType::Bool)); }
std::string Config::get_string(const std::string& key) const {
  return std::get<std::string>(value_of(key, ValueType::String));
}
std::vector<int64_t> Config::get_int_list(const std::string& key) const {
  return std::get<std::vector<int64_t>>(value_of(key, ValueType::IntList));
}

void Config::dump_section(const std::string& prefix, int indent, std::string& out) const {
  // Children of `prefix` in order of first appearance, so sections follow the schema's order.
  std::vector<std::string> children;
  for (const ConfigKey& k : schema_) {
    if (!k.key.starts_with(prefix)) continue;
    std::string child = k.key.substr(prefix.size(), k.key.find('.', prefix.size()) - prefix.size());
    if (std::find(children.begin(), children.end(), child) == children.end()) children.push_back(child);
  }
  const std::string pad(indent, ' ');
  for (const std::string& child : children) {
    auto found = index_.find(prefix + child);
    if (found == index_.end()) {
      out += pad + child + ":\n";
      dump_section(prefix + child + ".", indent + 2, out);
      continue;
    }
    const Value& v = values_[found->second];
    std::string text;
    if (auto* s = std::get_if<std::string>(&v)) {
      // The emitter escapes quotes and control characters, so any string loads back unchanged.
      YAML::Emitter e;
      e << YAML::DoubleQuoted << *s;
      text = e.c_str();
    } else if (auto* d = std::get_if<double>(&v)) {
      text = fmt::format("{}", *d);  // shortest form that reads back to the same double
      if (text.find_first_of(".e") == std::string::npos) text += ".0";
    } else if (auto* list = std::get_if<std::vector<int64_t>>(&v)) {
      text = fmt::format("[{}]", fmt::join(*list, ", "));
    } else {
      text = value_text(v);
    }
    out += pad + "# " + schema_[found->second].doc + "\n" + pad + child + ": " + text + "\n";
  }
}

std::string Config::dump_yaml() const {
  std::string out;
  dump_section("", 0, out);
  return out;
}

nlohmann::json Config::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  for (size_t i = 0; i < schema_.size(); ++i)
    std::visit([&](const auto& v) { j[schema_[i].key] = v; }, values_[i]);
  return j;
}

void Config::load_json(const nlohmann::json& json) {
  RECUR_CHECK(json.is_object(), "config json: expected an object, got {}", json.type_name());
  auto walk = [&](auto& self, const nlohmann::json& obj, const std::string& prefix) -> void {
    for (const auto& [name, v] : obj.items()) {
      const std::string key = prefix + name;
      auto found = index_.find(key);
      if (found == index_.end() && is_section(key)) {
        RECUR_CHECK(v.is_object(), "{}: expected an object of '{}.*' keys, got '{}' (json)", key, key, v.dump());
        self(self, v, key + ".");
        continue;
      }
      if (found == index_.end()) fail_unknown(key, "json");
      const ConfigKey& spec = schema_[found->second];
      auto text = [](const nlohmann::json& x) { return x.is_string() ? x.get<std::string>() : x.dump(); };
      // Typed JSON must match: a string is only accepted where a string is expected, so a
      // checkpoint written with a different schema fails loudly instead of being reinterpreted.
      const bool type_ok = spec.type == ValueType::String ? v.is_string()
                           : spec.type == ValueType::Bool ? v.is_boolean()
                           : spec.type == ValueType::IntList ? v.is_array()
                           : v.is_number();
      RECUR_CHECK(type_ok, "{}: expected {}, got '{}' (json)", key, type_name(spec.type), v.dump());
      if (v.is_array()) {
        std::vector<std::string> items;
        for (const auto& item : v) items.push_back(text(item));
        store(found->second, parse_items(spec, items, "json"), "json");
      } else {
        store(found->second, parse_text(spec, text(v), "json"), "json");
      }
    }
  };
  std::vector<Value> saved = values_;
  try {
    walk(walk, json, "");
  } catch (...) {
    values_ = std::move(saved);
    throw;
  }
}

}  // namespace recur::cli
