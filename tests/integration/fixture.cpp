#include "fixture.hpp"

#include <boost/test/results_collector.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <stdexcept>

namespace prefork::test {

std::string start_mode() {
  const auto& suite = boost::unit_test::framework::master_test_suite();
  for (int i = 1; i < suite.argc; ++i) {
    std::string_view arg = suite.argv[i];
    if (arg == "fork" || arg == "spawn") return std::string(arg);
  }
  return "fork";
}

bool spawn_mode() { return start_mode() == "spawn"; }

prefork::Model model_under_test() {
  const auto flags = model_arguments();
  for (std::size_t i = 0; i + 1 < flags.size(); i += 2)
    if (flags[i] == "--model") {
      if (auto model = prefork::model_from_name(flags[i + 1])) return *model;
      throw std::runtime_error("unknown model on the test's command line: " + flags[i + 1]);
    }
  return prefork::Model::event;
}

bool one_process_model() { return !prefork::facts(model_under_test()).pool; }

std::vector<std::string> model_arguments() {
  // `model=NAME` and `accept=NAME` after `--` on the test's command line.
  std::vector<std::string> flags;
  const auto& suite = boost::unit_test::framework::master_test_suite();
  for (int i = 1; i < suite.argc; ++i) {
    std::string_view arg = suite.argv[i];
    for (std::string_view key : {"model=", "accept="})
      if (arg.starts_with(key)) {
        flags.push_back("--" + std::string(key.substr(0, key.size() - 1)));
        flags.emplace_back(arg.substr(key.size()));
      }
  }
  return flags;
}

boost::test_tools::assertion_result only_in_spawn_mode(boost::unit_test::test_unit_id) {
  boost::test_tools::assertion_result result(spawn_mode());
  result.message() << "only meaningful in spawn mode (this run: " << start_mode() << ")";
  return result;
}

std::string bin_path(const std::string& name) { return PREFORK_BIN_DIR "/" + name; }

std::string lib_path(const std::string& name) {
  // CMake puts libraries in build/lib, beside build/bin.
  return PREFORK_BIN_DIR "/../lib/" + name;
}

std::string source_path(const std::string& relative) { return PREFORK_SOURCE_DIR "/" + relative; }

bool current_test_failing() {
  if (std::uncaught_exceptions() > 0) return true;
  auto id = boost::unit_test::framework::current_test_case().p_id;
  return !boost::unit_test::results_collector.results(id).passed();
}

std::vector<std::string> server_arguments(const std::string& stats, unsigned workers,
                                          std::vector<std::string> args) {
  // CI runs as root: the workers may stay root here (the privileges test
  // drops them with --user, which --allow-root leaves in force).
  std::vector<std::string> all{"--start",     start_mode(), "--stats",
                               stats,         "--workers",  std::to_string(workers),
                               "--allow-root"};
  auto model = model_arguments();
  all.insert(all.end(), model.begin(), model.end());
  all.insert(all.end(), args.begin(), args.end());
  return all;
}

namespace {

std::size_t listener_count(const std::vector<std::string>& args) {
  std::size_t count = 0;
  for (const auto& arg : args) {
    if (arg == "--") break;
    if (arg == "--tcp" || arg == "--framed" || arg == "--udp") ++count;
  }
  return count;
}

}  // namespace

UpperServer::UpperServer(std::vector<std::string> args) : UpperServer(std::move(args), Options{}) {}

UpperServer::UpperServer(std::vector<std::string> args, Options options)
    : shm_(unique_stats_name()),
      process_(bin_path(options.program), server_arguments(shm_.name(), options.workers, args)) {
  endpoints_ = process_.wait_for_listening(listener_count(args), start_timeout);
  if (!options.wait_for_workers) return;
  const std::size_t slots = one_process_model() ? 1 : options.workers;
  auto ready = when(
      [&](const ScoreboardSnapshot& s) { return s.slots.size() == slots && all_workers_ready(s); },
      start_timeout);
  if (!ready)
    throw std::runtime_error("workers not ready in time:\n" + describe(last_) +
                             process_.describe());
  ready_ = *ready;
}

UpperServer::WorkerReaper::WorkerReaper() {
  // Before the master starts, so that its workers are never orphaned to init.
  static const bool subreaper = (become_child_subreaper(), true);
  static_cast<void>(subreaper);
}

UpperServer::WorkerReaper::~WorkerReaper() {
  for (pid_t pid : pids) wait_exited(pid, 2'000ms);
}

void UpperServer::remember_workers(const ScoreboardSnapshot& snapshot) {
  for (pid_t pid : worker_pids(snapshot))
    if (std::find(reaper_.pids.begin(), reaper_.pids.end(), pid) == reaper_.pids.end())
      reaper_.pids.push_back(pid);
}

UpperServer::~UpperServer() {
#if defined(__SANITIZE_THREAD__)
  // Under ThreadSanitizer (scripts/test.sh's build-tsan/) a race in a
  // worker is reported on the server's stderr, and the worker may exit
  // alone (halt_on_error) to be replaced by the master: the test would not
  // notice. So the server is stopped here and its stderr, read to the end,
  // must hold no report.
  if (process_.running()) {
    process_.signal(SIGTERM);
    process_.wait_exit(tsan_stop_timeout);
  }
  const std::string errors = process_.stderr_text();
  BOOST_TEST(errors.find("ThreadSanitizer") == std::string::npos,
             "ThreadSanitizer reported in the server (its stderr follows)");
#endif
  if (!current_test_failing()) return;
  // ctest --output-on-failure shows this beside the failed assertions.
  std::cerr << "=== upper_server of the failed test: " << process_.describe()
            << "\n=== last scoreboard seen:\n"
            << describe(last_) << std::endl;
}

const Endpoint& UpperServer::endpoint(std::string_view protocol, bool ipv6) const {
  for (const auto& e : endpoints_)
    if (e.protocol == protocol && (e.host.find(':') != std::string::npos) == ipv6) return e;
  throw std::runtime_error("no " + std::string(protocol) + (ipv6 ? " IPv6" : " IPv4") +
                           " listener in " + process_.describe());
}

ScoreboardSnapshot UpperServer::snapshot() {
  ScoreboardSnapshot snapshot = ScoreboardReader::open(stats_name()).snapshot();
  remember_workers(snapshot);
  return snapshot;
}

std::optional<ScoreboardSnapshot> UpperServer::when(
    const std::function<bool(const ScoreboardSnapshot&)>& predicate, Milliseconds timeout) {
  auto result = scoreboard_when(stats_name(), predicate, timeout, &last_);
  remember_workers(last_);
  return result;
}

std::uint64_t UpperServer::requests_when_at_least(std::uint64_t expected) {
  when([&](const ScoreboardSnapshot& s) { return s.totals.requests >= expected; });
  return last_.totals.requests;
}

Endpoint metrics_endpoint(UpperServer& server, std::size_t listeners) {
  for (const Endpoint& e : server.process().wait_for_listening(listeners + 1, start_timeout))
    if (e.protocol == "metrics") return e;
  throw std::runtime_error("no `listening metrics` line");
}

Finished run_to_end(const std::string& program, std::vector<std::string> args) {
  ServerProcess process(program, std::move(args));
  Finished result;
  result.status = process.wait_exit(state_timeout);
  result.out = process.stdout_text(1'000ms);
  result.err = process.stderr_text();
  result.description = process.describe();
  return result;
}

TempDir::TempDir() {
  char pattern[] = "/tmp/prefork_test_XXXXXX";
  if (::mkdtemp(pattern) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string TempDir::write(const std::string& name, const std::string& text) const {
  const std::string path = file(name), next = path + ".next";
  std::ofstream(next) << text;
  std::filesystem::rename(next, path);
  return path;
}

std::string TempDir::script(const std::string& name, const std::string& text) const {
  const std::string path = file(name);
  std::ofstream(path) << "#!/bin/sh\n" << text;
  if (::chmod(path.c_str(), 0755) != 0) throw std::runtime_error("chmod " + path);
  return path;
}

std::size_t count_of(std::string_view text, std::string_view part) {
  std::size_t n = 0;
  for (std::size_t at = text.find(part); at != std::string_view::npos && !part.empty();
       at = text.find(part, at + part.size()))
    ++n;
  return n;
}

std::size_t logged(const ServerProcess& server, std::string_view what) {
  return count_of(server.stderr_text(), what);
}

bool logged_when(const ServerProcess& server, std::string_view what, std::size_t times,
                 Milliseconds timeout) {
  return wait_until([&] { return logged(server, what) >= times; }, timeout);
}

}  // namespace prefork::test
