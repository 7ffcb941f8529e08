#pragma once
/// \file Schema-driven configuration for the recur CLI: YAML files, `--set key=value` overrides,
/// typed getters, and a JSON form stored in checkpoint metadata. The library never sees this
/// class; commands read it and fill the library's options structs.
#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <variant>
#include <vector>

namespace recur::cli {

/// The type of one configuration value.
enum class ValueType { Int, Float, Bool, String, IntList };

/// One declared configuration key.
struct ConfigKey {
  /// Dotted path, e.g. "model.hidden"; segments are letters, digits, '_' and '-'.
  std::string key;
  ValueType type;
  /// Written as on the command line: "128", "1e-3", "true", "lstm", "128,64".
  std::string default_value;
  /// One line; `dump_yaml` writes it as a comment above the key.
  std::string doc;
  /// Allowed values written like the default; empty means any value of the type.
  std::vector<std::string> choices = {};
};

/// A set of typed values, one per schema key, starting at the defaults and overridden by YAML
/// files, JSON and `--set` assignments in the order they are applied. Every error is a
/// recur::Error naming the key and where the value came from (file:line, "--set" or "json").
class Config {
 public:
  /// Validates the schema (unique well-formed keys, a doc for each, defaults that parse and lie
  /// in their choices, no key that is also a section) and sets every key to its default.
  explicit Config(std::vector<ConfigKey> schema);

  /// Reads a YAML file; see load_yaml_string.
  void load_yaml_file(const std::string& path);
  /// Applies a YAML document. Nested maps flatten to dotted keys ("model: {hidden: 128}" sets
  /// "model.hidden"); dotted keys may also be written directly. An empty document changes
  /// nothing. `name_for_errors` stands for the file in messages.
  void load_yaml_string(const std::string& text, const std::string& name_for_errors);
  /// Applies one "key=value" assignment as given to `--set`. Lists are written "1,2" or "[1,2]".
  void set(const std::string& assignment);

  /// Typed getters. Asking for an undeclared key, or with the wrong type, is a programming
  /// error and throws recur::Error naming the key.
  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  std::string get_string(const std::string& key) const;
  std::vector<int64_t> get_int_list(const std::string& key) const;

  /// The resolved configuration as nested YAML in schema order, each key preceded by a "# doc"
  /// line. Loading it back gives the same values.
  std::string dump_yaml() const;
  /// A flat object {"model.hidden": 128, ...} with typed JSON values, for checkpoint metadata.
  nlohmann::json to_json() const;
  /// Applies an object written by to_json (nested objects are accepted as sections too).
  void load_json(const nlohmann::json& json);

  /// The schema in declaration order.
  const std::vector<ConfigKey>& schema() const { return schema_; }

 private:
  using Value = std::variant<int64_t, double, bool, std::string, std::vector<int64_t>>;

  // Parses `text` (YAML scalar, --set value or default) for `spec`; `where` is for messages.
  Value parse_text(const ConfigKey& spec, const std::string& text, const std::string& where) const;
  // Parses a sequence's items; only IntList keys accept one.
  Value parse_items(const ConfigKey& spec, const std::vector<std::string>& items,
                    const std::string& where) const;
  void store(size_t index, Value value, const std::string& where);
  // Throws for a key that is neither declared nor a section, suggesting the nearest one.
  [[noreturn]] void fail_unknown(const std::string& key, const std::string& where) const;
  bool is_section(const std::string& prefix) const;
  const Value& value_of(const std::string& key, ValueType type) const;
  void dump_section(const std::string& prefix, int indent, std::string& out) const;

  std::vector<ConfigKey> schema_;
  std::vector<Value> values_;                   // parallel to schema_
  std::vector<std::vector<Value>> choices_;     // parsed choices, parallel to schema_
  std::map<std::string, size_t> index_;         // key -> position in schema_
};

}  // namespace recur::cli
