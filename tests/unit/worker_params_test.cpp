// The master -> worker hand-off survives the trip through the environment
// a spawned worker is given, field by field, and a damaged one is refused
// with the variable's name.
#define BOOST_TEST_MODULE worker_params
#include <boost/test/unit_test.hpp>

#include <prefork/core/worker_params.hpp>
#include <prefork/models.hpp>

#include <map>
#include <stdexcept>
#include <string>

using prefork::WorkerParams;

namespace {

// An environment of our own, instead of the process's.
struct Environment {
  std::map<std::string, std::string> values;

  explicit Environment(const std::vector<std::string>& entries) {
    for (const std::string& entry : entries) {
      auto equals = entry.find('=');
      BOOST_REQUIRE(equals != std::string::npos);
      values[entry.substr(0, equals)] = entry.substr(equals + 1);
    }
  }
  WorkerParams::Lookup lookup() const {
    return [this](const char* name) -> const char* {
      auto found = values.find(name);
      return found == values.end() ? nullptr : found->second.c_str();
    };
  }
};

WorkerParams unusual() {
  // Every field away from its default, so a field left out of the trip shows.
  return WorkerParams{
      .slot = 7,
      .generation = 123456789012ull,
      .master_pid = 4242,
      .stats_name = "prefork_test_params",
      .model = prefork::Model::hybrid,
      .accept = prefork::Accept::flock,
      .threads = 9,
      .max_message = 65536,
      .max_connections = 77,
      .graceful_timeout = std::chrono::milliseconds(2500),
      .idle_timeout = std::chrono::milliseconds(1500),
      .read_timeout = std::chrono::milliseconds(0),
      .write_timeout = std::chrono::milliseconds(250),
      .max_requests = 1000,
      .worker_stats = false,
      .log = {.level = prefork::LogLevel::warning,
              .format = prefork::LogFormat::json,
              .file = "/var/log/prefork test.log"},
      .run_as = prefork::Credentials{.uid = 65534, .gid = 65533, .groups = {65533, 27, 100}},
      .listener_timeouts = {{.idle = std::chrono::milliseconds(300),
                             .read = std::chrono::milliseconds(0),
                             .write = std::chrono::milliseconds(86'400'000)},
                            {.idle = std::chrono::milliseconds(1500),
                             .read = std::chrono::milliseconds(0),
                             .write = std::chrono::milliseconds(250)}},
      .trace_origin_ns = 123'456'789'012'345ull,
  };
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_field_survives_the_environment) {
  const WorkerParams sent = unusual();
  Environment env(sent.to_environment());
  const WorkerParams received = WorkerParams::from_environment(env.lookup());
  BOOST_TEST(received.slot == sent.slot);
  BOOST_TEST(received.generation == sent.generation);
  BOOST_TEST(received.master_pid == sent.master_pid);
  BOOST_TEST(received.stats_name == sent.stats_name);
  BOOST_TEST(received.threads == sent.threads);
  BOOST_TEST(received.max_message == sent.max_message);
  BOOST_TEST(received.max_connections == sent.max_connections);
  BOOST_TEST(received.graceful_timeout.count() == sent.graceful_timeout.count());
  BOOST_TEST(received.idle_timeout.count() == sent.idle_timeout.count());
  BOOST_TEST(received.read_timeout.count() == sent.read_timeout.count());
  BOOST_TEST(received.write_timeout.count() == sent.write_timeout.count());
  BOOST_TEST(received.max_requests == sent.max_requests);
  BOOST_TEST(received.worker_stats == sent.worker_stats);
  BOOST_TEST((received.log == sent.log));
  BOOST_TEST((received.run_as == sent.run_as));
  BOOST_TEST((received.trace_origin_ns == sent.trace_origin_ns));
  BOOST_TEST((received == sent));
}

BOOST_AUTO_TEST_CASE(defaults_survive_too) {
  const WorkerParams sent{.master_pid = 1, .stats_name = "x", .run_as = {}};
  Environment env(sent.to_environment());
  BOOST_TEST((WorkerParams::from_environment(env.lookup()) == sent));
}

BOOST_AUTO_TEST_CASE(every_model_and_strategy_survives) {
  for (const prefork::ModelFacts& model : prefork::all_model_facts())
    for (prefork::Accept accept : model.accepts) {
      WorkerParams sent = unusual();
      sent.model = model.model;
      sent.accept = accept;
      Environment env(sent.to_environment());
      BOOST_TEST((WorkerParams::from_environment(env.lookup()) == sent), model.name);
    }
}

BOOST_AUTO_TEST_CASE(a_missing_variable_is_named) {
  Environment env(unusual().to_environment());
  env.values.erase("PREFORK_STATS");
  try {
    WorkerParams::from_environment(env.lookup());
    BOOST_FAIL("a missing PREFORK_STATS was accepted");
  } catch (const std::runtime_error& e) {
    BOOST_TEST(std::string(e.what()).find("PREFORK_STATS") != std::string::npos, e.what());
  }
}

BOOST_AUTO_TEST_CASE(a_malformed_number_is_named) {
  Environment env(unusual().to_environment());
  env.values["PREFORK_SLOT"] = std::string(1, '7') + 'x';
  try {
    WorkerParams::from_environment(env.lookup());
    BOOST_FAIL("a malformed PREFORK_SLOT was accepted");
  } catch (const std::runtime_error& e) {
    BOOST_TEST(std::string(e.what()).find("PREFORK_SLOT") != std::string::npos, e.what());
  }
}

BOOST_AUTO_TEST_CASE(listener_timeouts_resolve_and_a_damaged_list_is_named) {
  const WorkerParams sent = unusual();
  BOOST_TEST(sent.timeouts_for(1).write.count() == 250);
  // A listener past the list (none of its own): the server's.
  BOOST_TEST(sent.timeouts_for(2).idle.count() == sent.idle_timeout.count());
  for (const char* damaged : {"1,2", "1,2,3;", "1,2,x", ";1,2,3", ""}) {
    Environment env(sent.to_environment());
    env.values["PREFORK_LISTENER_TIMEOUTS_MS"] = damaged;
    try {
      WorkerParams::from_environment(env.lookup());
      BOOST_FAIL("PREFORK_LISTENER_TIMEOUTS_MS='" << damaged << "' was accepted");
    } catch (const std::runtime_error& e) {
      BOOST_TEST(std::string(e.what()).find("PREFORK_LISTENER_TIMEOUTS_MS") != std::string::npos,
                 e.what());
    }
  }
}

BOOST_AUTO_TEST_CASE(an_unknown_model_is_refused) {
  Environment env(unusual().to_environment());
  env.values.erase("PREFORK_MODEL");
  env.values.emplace("PREFORK_MODEL", std::string_view("fibers"));
  BOOST_CHECK_THROW(WorkerParams::from_environment(env.lookup()), std::runtime_error);
}

BOOST_AUTO_TEST_CASE(a_worker_environment_is_recognised) {
  Environment env(unusual().to_environment());
  BOOST_TEST(!WorkerParams::in_environment(env.lookup()));  // no LISTEN_FDS yet
  env.values.emplace("LISTEN_FDS", std::string_view("1"));
  BOOST_TEST(WorkerParams::in_environment(env.lookup()));
}

// The log goes to stderr unless a file is named: the variable is there, empty.
BOOST_AUTO_TEST_CASE(every_log_setting_survives_and_stderr_is_an_empty_file) {
  for (prefork::LogLevel level : {prefork::LogLevel::debug, prefork::LogLevel::info,
                                  prefork::LogLevel::warning, prefork::LogLevel::error})
    for (prefork::LogFormat format : {prefork::LogFormat::text, prefork::LogFormat::json}) {
      WorkerParams sent = unusual();
      sent.log = {.level = level, .format = format, .file = ""};
      Environment env(sent.to_environment());
      BOOST_TEST(env.values.at("PREFORK_LOG_FILE").empty());
      BOOST_TEST((WorkerParams::from_environment(env.lookup()).log == sent.log));
    }
}

BOOST_AUTO_TEST_CASE(a_bad_log_level_is_named) {
  Environment env(unusual().to_environment());
  env.values["PREFORK_LOG_LEVEL"] = "loud";
  try {
    WorkerParams::from_environment(env.lookup());
    BOOST_FAIL("PREFORK_LOG_LEVEL=loud was accepted");
  } catch (const std::runtime_error& e) {
    BOOST_TEST(std::string(e.what()).find("PREFORK_LOG_LEVEL") != std::string::npos, e.what());
  }
  env.values.erase("PREFORK_LOG_LEVEL");
  BOOST_CHECK_THROW(WorkerParams::from_environment(env.lookup()), std::runtime_error);
}

BOOST_AUTO_TEST_CASE(the_identity_to_drop_to_survives_with_and_without_groups) {
  WorkerParams sent = unusual();
  sent.run_as->groups.clear();
  Environment env(sent.to_environment());
  BOOST_TEST(env.values.at("PREFORK_RUN_AS") == "65534:65533:");
  BOOST_TEST((WorkerParams::from_environment(env.lookup()) == sent));
  sent.run_as.reset();
  Environment none(sent.to_environment());
  BOOST_TEST(none.values.count("PREFORK_RUN_AS") == 0u);
  BOOST_TEST((WorkerParams::from_environment(none.lookup()).run_as == std::nullopt));
}

BOOST_AUTO_TEST_CASE(a_malformed_identity_is_named) {
  for (const char* bad : {"", "65534", "65534:", "x:1:", "1:2:3,", "1:2:,3", "1:2:3:4", "-1:2:"}) {
    Environment env(unusual().to_environment());
    env.values["PREFORK_RUN_AS"] = bad;
    try {
      WorkerParams::from_environment(env.lookup());
      BOOST_ERROR("PREFORK_RUN_AS='" << bad << "' was accepted");
    } catch (const std::runtime_error& e) {
      BOOST_TEST(std::string(e.what()).find("PREFORK_RUN_AS") != std::string::npos, e.what());
    }
  }
}
