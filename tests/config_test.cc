// The CLI's schema-driven config: defaults, YAML flattening, --set, JSON, dump round trips and
// the error message of every kind of bad input.
#include "config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "recur/core/error.h"

namespace recur::cli {
namespace {

std::vector<ConfigKey> test_schema() {
  return {
      {"model.cell", ValueType::String, "lstm", "recurrent cell", {"lstm", "gru", "rnn"}},
      {"model.hidden", ValueType::Int, "128", "hidden units per layer"},
      {"model.layers", ValueType::IntList, "128,64", "hidden sizes of the stacked layers"},
      {"model.bidirectional", ValueType::Bool, "false", "run each layer both ways"},
      {"train.lr", ValueType::Float, "1e-3", "learning rate"},
      {"train.epochs", ValueType::Int, "10", "passes over the data"},
      {"train.optim.name", ValueType::String, "adam", "optimizer"},
      {"train.optim.beta2", ValueType::Float, "0.999", "second-moment decay"},
      {"seed", ValueType::Int, "42", "random seed"},
      {"run_name", ValueType::String, "", "free-form label"},
  };
}

// Passes when `f` throws recur::Error whose message contains every one of `parts`.
::testing::AssertionResult throws_with(const std::function<void()>& f, std::initializer_list<std::string> parts) {
  try {
    f();
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const std::string& p : parts)
      if (msg.find(p) == std::string::npos)
        return ::testing::AssertionFailure() << "message lacks '" << p << "': " << msg;
    return ::testing::AssertionSuccess() << msg;
  }
  return ::testing::AssertionFailure() << "no recur::Error thrown";
}

std::string write_temp(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + name;
  std::ofstream(path) << text;
  return path;
}

TEST(ConfigDefaults, EveryKeyStartsAtItsDefault) {
  Config c(test_schema());
  EXPECT_EQ(c.get_string("model.cell"), "lstm");
  EXPECT_EQ(c.get_int("model.hidden"), 128);
  EXPECT_EQ(c.get_int_list("model.layers"), (std::vector<int64_t>{128, 64}));
  EXPECT_FALSE(c.get_bool("model.bidirectional"));
  EXPECT_DOUBLE_EQ(c.get_float("train.lr"), 1e-3);
  EXPECT_EQ(c.get_string("train.optim.name"), "adam");
  EXPECT_EQ(c.get_string("run_name"), "");
  EXPECT_EQ(c.schema().size(), 10u);
}

TEST(ConfigDefaults, BadSchemasAreRejected) {
  EXPECT_TRUE(throws_with([] { Config({{"a", ValueType::Int, "x", "doc"}}); }, {"a", "expected an integer", "'x'"}));
  EXPECT_TRUE(throws_with([] { Config({{"a", ValueType::String, "z", "doc", {"x", "y"}}}); }, {"'z'", "x, y"}));
  EXPECT_TRUE(throws_with([] { Config({{"a", ValueType::Int, "1", "d"}, {"a", ValueType::Int, "1", "d"}}); },
                          {"'a'", "twice"}));
  EXPECT_TRUE(throws_with([] { Config({{"a", ValueType::Int, "1", "d"}, {"a.b", ValueType::Int, "1", "d"}}); },
                          {"'a'", "both a key and a section"}));
  EXPECT_TRUE(throws_with([] { Config({{"a", ValueType::Int, "1", ""}}); }, {"'a'", "doc"}));
  EXPECT_TRUE(throws_with([] { Config({{"a..b", ValueType::Int, "1", "d"}}); }, {"'a..b'", "malformed"}));
}

TEST(ConfigYaml, NestedMapsFlattenToDottedKeys) {
  Config c(test_schema());
  c.load_yaml_string(
      "model:\n"
      "  cell: gru\n"
      "  hidden: 256\n"
      "  layers: [32, 16, 8]\n"
      "  bidirectional: yes\n"
      "train:\n"
      "  lr: 5e-4\n"
      "  optim:\n"
      "    beta2: 1\n"
      "train.epochs: 3\n"
      "seed: -7\n",
      "cfg.yaml");
  EXPECT_EQ(c.get_string("model.cell"), "gru");
  EXPECT_EQ(c.get_int("model.hidden"), 256);
  EXPECT_EQ(c.get_int_list("model.layers"), (std::vector<int64_t>{32, 16, 8}));
  EXPECT_TRUE(c.get_bool("model.bidirectional"));
  EXPECT_DOUBLE_EQ(c.get_float("train.lr"), 5e-4);
  EXPECT_DOUBLE_EQ(c.get_float("train.optim.beta2"), 1.0);
  EXPECT_EQ(c.get_int("train.epochs"), 3);
  EXPECT_EQ(c.get_int("seed"), -7);
  EXPECT_EQ(c.get_string("train.optim.name"), "adam");  // untouched keys keep their defaults
}

TEST(ConfigYaml, LaterSourcesOverrideEarlierOnes) {
  Config c(test_schema());
  c.load_yaml_file(write_temp("config_a.yaml", "model: {hidden: 64}\ntrain: {epochs: 2}\n"));
  c.load_yaml_string("model:\n  hidden: 32\n", "b.yaml");
  c.load_yaml_string("", "empty.yaml");
  EXPECT_EQ(c.get_int("model.hidden"), 32);
  EXPECT_EQ(c.get_int("train.epochs"), 2);
}

TEST(ConfigSet, OverridesConvertTypes) {
  Config c(test_schema());
  c.set("model.hidden=512");
  c.set("model.layers=1,2,3");
  c.set(" model.bidirectional = 1 ");
  c.set("train.lr=2.5E-2");
  c.set("train.epochs=+4");
  c.set("run_name=a=b");  // only the first '=' splits
  EXPECT_EQ(c.get_int("model.hidden"), 512);
  EXPECT_EQ(c.get_int_list("model.layers"), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_TRUE(c.get_bool("model.bidirectional"));
  EXPECT_DOUBLE_EQ(c.get_float("train.lr"), 0.025);
  EXPECT_EQ(c.get_int("train.epochs"), 4);
  EXPECT_EQ(c.get_string("run_name"), "a=b");
  c.set("model.layers=[7, 8]");
  EXPECT_EQ(c.get_int_list("model.layers"), (std::vector<int64_t>{7, 8}));
  c.set("model.layers=");
  EXPECT_TRUE(c.get_int_list("model.layers").empty());
  c.set("model.bidirectional=No");
  EXPECT_FALSE(c.get_bool("model.bidirectional"));
}

TEST(ConfigErrors, UnknownKeyNamesFileLineAndSuggestion) {
  Config c(test_schema());
  const std::string yaml = "seed: 1\nmodel:\n  cell: gru\n  hiden: 12\n";
  EXPECT_TRUE(throws_with([&] { c.load_yaml_string(yaml, "cfg.yaml"); },
                          {"'model.hiden'", "cfg.yaml:4", "did you mean 'model.hidden'?"}));
  EXPECT_TRUE(throws_with([&] { c.load_yaml_string("modle:\n  hidden: 1\n", "cfg.yaml"); },
                          {"'modle'", "cfg.yaml:1", "did you mean 'model'?"}));
  // Written at the wrong level: suggested by its last segment.
  EXPECT_TRUE(throws_with([&] { c.load_yaml_string("epochs: 3\n", "cfg.yaml"); },
                          {"'epochs'", "did you mean 'train.epochs'?"}));
  try {
    c.load_yaml_string("\n\nbanana_split_sundae: 1\n", "x.yaml");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("x.yaml:3"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("did you mean"), std::string::npos) << e.what();
  }
}

TEST(ConfigErrors, WrongTypesNameKeyValueAndLine) {
  Config c(test_schema());
  EXPECT_TRUE(throws_with([&] { c.load_yaml_string("seed: 1\nmodel:\n  cell: gru\n  hidden: abc\n", "cfg.yaml"); },
                          {"model.hidden: expected an integer, got 'abc' (cfg.yaml:4)"}));
  EXPECT_TRUE(throws_with([&] { c.load_yaml_string("model:\n  hidden: 1.5\n", "c.yaml"); }, {"model.hidden", "'1.5'"}));
  EXPECT_TRUE(throws_with([&] { c.load_yaml_string("model:\n  bidirectional: maybe\n", "c.yaml"); },
                          {"model.bidirectional", "boolean", "'maybe'", "c.yaml:2"}));
  EXPECT_TRUE(throws_with([&] { c.load_yaml_string("train:\n  lr: fast\n", "c.yaml"); }, {"train.lr", "number", "'fast'"}));
  EXPECT_TRUE(throws_with([&] { c.load_yaml_string("model:\n  layers: [1,\n    x]\n", "c.yaml"); },
                          {"model.layers", "'x'", "c.yaml:2"}));
  EXPECT_TRUE(throws_with([&] { c.load_yaml_string("seed: [1, 2]\n", "c.yaml"); }, {"seed", "got a list"}));
  EXPECT_TRUE(throws_with([&] { c.load_yaml_string("seed:\n", "c.yaml"); }, {"seed", "got nothing"}));
  EXPECT_TRUE(throws_with([&] { c.load_yaml_string("seed: {a: 1}\n", "c.yaml"); }, {"seed", "got a map"}));
  // A failed load applies nothing, not even the keys before the bad one.
  EXPECT_EQ(c.get_int("seed"), 42);
  EXPECT_EQ(c.get_string("model.cell"), "lstm");
  EXPECT_TRUE(throws_with([&] { c.load_json(nlohmann::json{{"seed", 5}, {"train.lr", "x"}}); }, {"train.lr"}));
  EXPECT_EQ(c.get_int("seed"), 42);
}

TEST(ConfigErrors, ValueOutsideChoicesListsThem) {
  Config c(test_schema());
  EXPECT_TRUE(throws_with([&] { c.load_yaml_string("model:\n  cell: lsmt\n", "c.yaml"); },
                          {"model.cell", "'lsmt'", "lstm, gru, rnn", "c.yaml:2"}));
  EXPECT_TRUE(throws_with([&] { c.set("model.cell=transformer"); }, {"model.cell", "'transformer'", "lstm, gru, rnn", "--set"}));
}

TEST(ConfigErrors, MalformedYamlMissingFileAndNonMaps) {
  Config c(test_schema());
  EXPECT_TRUE(throws_with([&] { c.load_yaml_string("model:\n  hidden: [1, 2\nseed: 3\n", "bad.yaml"); },
                          {"malformed YAML", "bad.yaml:"}));
  EXPECT_TRUE(throws_with([&] { c.load_yaml_string("seed: 1\n  x: : y\n", "bad.yaml"); }, {"malformed YAML", "bad.yaml:2"}));
  EXPECT_TRUE(throws_with([&] { c.load_yaml_file("/nonexistent/recur.yaml"); }, {"cannot open", "/nonexistent/recur.yaml"}));
  EXPECT_TRUE(throws_with([&] { c.load_yaml_string("seed: 1\nmodel: 5\n", "c.yaml"); },
                          {"model", "expected a map", "'5'", "c.yaml:2"}));
  EXPECT_TRUE(throws_with([&] { c.load_yaml_string("train:\n  optim: [1]\n", "c.yaml"); },
                          {"train.optim", "expected a map", "c.yaml:2"}));
  EXPECT_TRUE(throws_with([&] { c.load_yaml_string("- a\n- b\n", "c.yaml"); }, {"top level", "c.yaml:1"}));
}

TEST(ConfigErrors, BadSetAssignments) {
  Config c(test_schema());
  EXPECT_TRUE(throws_with([&] { c.set("model.hidden"); }, {"model.hidden", "key=value"}));
  EXPECT_TRUE(throws_with([&] { c.set("model.hiddn=3"); }, {"'model.hiddn'", "--set", "did you mean 'model.hidden'?"}));
  EXPECT_TRUE(throws_with([&] { c.set("model=3"); }, {"'model'", "unknown"}));
  EXPECT_TRUE(throws_with([&] { c.set("model.hidden=12x"); }, {"model.hidden", "expected an integer", "'12x'", "--set"}));
  EXPECT_TRUE(throws_with([&] { c.set("model.layers=1,x"); }, {"model.layers", "'1,x'"}));
  EXPECT_TRUE(throws_with([&] { c.set("model.layers=1,"); }, {"model.layers", "'1,'"}));
  EXPECT_TRUE(throws_with([&] { c.set("train.lr=inf"); }, {"train.lr", "'inf'"}));
  EXPECT_TRUE(throws_with([&] { c.set("seed=99999999999999999999"); }, {"seed", "expected an integer"}));
}

TEST(ConfigErrors, GettersRejectUndeclaredKeysAndWrongTypes) {
  Config c(test_schema());
  EXPECT_TRUE(throws_with([&] { c.get_int("model.size"); }, {"'model.size'", "not declared"}));
  EXPECT_TRUE(throws_with([&] { c.get_string("model.hidden"); }, {"'model.hidden'", "integer", "not a string"}));
  EXPECT_TRUE(throws_with([&] { c.get_float("seed"); }, {"'seed'"}));
  EXPECT_TRUE(throws_with([&] { c.get_int_list("model.hidden"); }, {"'model.hidden'"}));
  EXPECT_TRUE(throws_with([&] { c.get_bool("model.cell"); }, {"'model.cell'"}));
}

TEST(ConfigDump, NestedWithDocsAndLoadsBackToTheSameValues) {
  Config c(test_schema());
  c.set("model.layers=");
  c.set("train.lr=1.2345678901234567e-7");
  EXPECT_NE(Config(test_schema()).dump_yaml().find("  layers: [128, 64]\n"), std::string::npos);
  c.set("train.optim.beta2=100000");
  c.set("seed=-3");
  c.set("run_name=\"quoted\": #not a comment\\ \ttab 'x'");
  const std::string yaml = c.dump_yaml();
  EXPECT_NE(yaml.find("model:\n  # recurrent cell\n  cell: \"lstm\"\n  # hidden units per layer\n  hidden: 128\n"),
            std::string::npos)
      << yaml;
  EXPECT_NE(yaml.find("train:\n"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("  optim:\n    # optimizer\n    name: \"adam\"\n"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("# random seed\nseed: -3\n"), std::string::npos) << yaml;

  Config d(test_schema());
  d.set("run_name=other");
  d.set("model.hidden=1");
  d.load_yaml_string(yaml, "dump.yaml");
  EXPECT_EQ(d.to_json(), c.to_json()) << yaml;
  EXPECT_EQ(d.get_string("run_name"), "\"quoted\": #not a comment\\ \ttab 'x'");
  EXPECT_EQ(d.get_float("train.lr"), 1.2345678901234567e-7);
  EXPECT_EQ(d.get_float("train.optim.beta2"), 100000.0);
  EXPECT_TRUE(d.get_int_list("model.layers").empty());
  EXPECT_EQ(d.dump_yaml(), yaml);
}

TEST(ConfigDump, StringsThatLookLikeOtherTypesSurvive) {
  for (const std::string s : {"true", "123", "", "null", "~", "- x", "[1]", "a\nb", "é ü"}) {
    Config c(test_schema());
    c.load_json(nlohmann::json{{"run_name", s}});
    Config d(test_schema());
    d.load_yaml_string(c.dump_yaml(), "dump.yaml");
    EXPECT_EQ(d.get_string("run_name"), s) << c.dump_yaml();
  }
}

TEST(ConfigJson, RoundTripsAndChecksTypes) {
  Config c(test_schema());
  c.set("model.cell=gru");
  c.set("model.layers=3,4");
  c.set("model.bidirectional=true");
  c.set("train.lr=0.1");
  const nlohmann::json j = c.to_json();
  EXPECT_EQ(j["model.hidden"], 128);
  EXPECT_EQ(j["model.layers"], nlohmann::json({3, 4}));
  EXPECT_EQ(j["train.lr"], 0.1);
  // Through text, as it is stored in safetensors metadata.
  Config d(test_schema());
  d.load_json(nlohmann::json::parse(j.dump()));
  EXPECT_EQ(d.to_json(), j);
  EXPECT_EQ(d.get_string("model.cell"), "gru");
  EXPECT_DOUBLE_EQ(d.get_float("train.lr"), 0.1);

  Config e(test_schema());
  e.load_json(nlohmann::json::parse(R"({"model": {"hidden": 7}, "train.optim": {"name": "sgd"}})"));
  EXPECT_EQ(e.get_int("model.hidden"), 7);
  EXPECT_EQ(e.get_string("train.optim.name"), "sgd");

  EXPECT_TRUE(throws_with([&] { e.load_json(nlohmann::json::parse(R"({"model.hiddn": 3})")); },
                          {"'model.hiddn'", "json", "did you mean 'model.hidden'?"}));
  EXPECT_TRUE(throws_with([&] { e.load_json(nlohmann::json::parse(R"({"model.hidden": "3"})")); },
                          {"model.hidden", "expected an integer", "json"}));
  EXPECT_TRUE(throws_with([&] { e.load_json(nlohmann::json::parse(R"({"model.hidden": 3.5})")); }, {"model.hidden", "3.5"}));
  EXPECT_TRUE(throws_with([&] { e.load_json(nlohmann::json::parse(R"({"model.layers": [1, "a"]})")); },
                          {"model.layers", "'a'"}));
  EXPECT_TRUE(throws_with([&] { e.load_json(nlohmann::json::parse(R"({"model": 3})")); }, {"model", "expected an object"}));
  EXPECT_TRUE(throws_with([&] { e.load_json(nlohmann::json::array()); }, {"expected an object"}));
}

}  // namespace
}  // namespace recur::cli
