// The programs around upper_server: prefork-top reading its scoreboard, the
// generic worker host loading a plugin, and the Python example clients.
#define BOOST_TEST_MODULE integration_tools
#include <boost/test/unit_test.hpp>

#include "fixture.hpp"

// Header-only Boost.JSON: the tests need no compiled Boost library but
// Boost.Test.
#include <boost/json/src.hpp>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <sstream>

using namespace prefork::test;
namespace utf = boost::unit_test;
namespace json = boost::json;

namespace {

// Runs a short-lived program to its end; its stdout, or a test failure.
struct Finished {
  std::optional<int> status;
  std::string out;
  std::string description;
};

Finished run_to_end(const std::string& program, std::vector<std::string> args) {
  ServerProcess process(program, std::move(args));
  Finished result;
  result.status = process.wait_exit(state_timeout);
  result.out = process.stdout_text(1'000ms);
  result.description = process.describe();
  return result;
}

bool in_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "");
  for (std::string dir; std::getline(dirs, dir, ':');)
    if (::access((dir + "/" + program).c_str(), X_OK) == 0) return true;
  return false;
}

std::string client_script(const std::string& name) {
  return source_path("examples/clients/" + name);
}

boost::test_tools::assertion_result python_clients_available(utf::test_unit_id) {
  boost::test_tools::assertion_result result(true);
  if (!in_path("python3")) {
    result = false;
    result.message() << "python3 is not in PATH";
  }
  for (const char* name : {"udp_client.py", "tcp_client.py", "framed_client.py"}) {
    if (!std::filesystem::exists(client_script(name))) {
      result = false;
      result.message() << client_script(name) << " does not exist yet; ";
    }
  }
  return result;
}

// The plugin the lead's build makes for prefork-worker; its exact file name
// is whatever CMake gives the upper_plugin target.
std::string upper_plugin_path() {
  for (const char* name : {"libupper_plugin.so", "upper_plugin.so"})
    if (std::filesystem::exists(lib_path(name))) return lib_path(name);
  return lib_path("libupper_plugin.so");
}

}  // namespace

BOOST_AUTO_TEST_CASE(prefork_top_json_matches_the_scoreboard) {
  UpperServer server({"--framed", "127.0.0.1:0"});
  auto client = TcpClient::connect(server.endpoint("framed"));
  for (int i = 0; i < 7; ++i) BOOST_TEST(client.request_frame("count me") == "COUNT ME");
  BOOST_TEST_REQUIRE(server.requests_when_at_least(7) == 7u);

  Finished top = run_to_end(bin_path("prefork-top"), {"--json", "--once", server.stats_name()});
  BOOST_TEST_REQUIRE(status_or_running(top.status) == 0, top.description);
  json::value document = json::parse(top.out);
  const json::object& root = document.as_object();
  BOOST_TEST(root.at("master_pid").to_number<pid_t>() == server.pid());
  std::vector<pid_t> pids;
  for (const json::value& worker : root.at("workers").as_array())
    pids.push_back(worker.as_object().at("pid").to_number<pid_t>());
  std::vector<pid_t> expected = worker_pids(server.ready_snapshot());
  std::sort(pids.begin(), pids.end());
  std::sort(expected.begin(), expected.end());
  BOOST_TEST(pids == expected, boost::test_tools::per_element());
  const json::object& totals = root.at("totals").as_object();
  BOOST_TEST(totals.at("requests").to_number<std::uint64_t>() == 7u);
  BOOST_TEST(totals.at("errors").to_number<std::uint64_t>() == 0u);
  BOOST_TEST(totals.at("worker_restarts").to_number<std::uint64_t>() == 0u);
  BOOST_TEST(totals.at("bytes_in").to_number<std::uint64_t>() == 7u * (4 + 8));
  BOOST_TEST(totals.at("bytes_out").to_number<std::uint64_t>() == 7u * (4 + 8));
}

BOOST_AUTO_TEST_CASE(prefork_top_exits_1_when_the_segment_is_missing) {
  Finished top = run_to_end(bin_path("prefork-top"), {"--json", "--once", unique_stats_name()});
  BOOST_TEST(status_or_running(top.status) == 1, top.description);
}

BOOST_AUTO_TEST_CASE(generic_worker_host_serves_through_the_plugin,
                     *utf::precondition(only_in_spawn_mode)) {
  const std::string plugin = upper_plugin_path();
  UpperServer server({"--framed", "127.0.0.1:0", "--udp", "[::1]:0", "--worker-exe",
                      bin_path("prefork-worker"), "--", "--plugin", plugin});
  for (pid_t worker : worker_pids(server.ready_snapshot()))
    BOOST_TEST(std::filesystem::path(executable_of(worker)).filename() == "prefork-worker");
  auto tcp = TcpClient::connect(server.endpoint("framed"));
  BOOST_TEST(tcp.request_frame("from a plugin") == "FROM A PLUGIN");
  auto udp = UdpClient::connect(server.endpoint("udp", true));
  BOOST_TEST(udp.request("datagram") == "DATAGRAM");
  BOOST_TEST(server.requests_when_at_least(2) == 2u);
}

BOOST_AUTO_TEST_CASE(python_clients_get_upper_cased_replies,
                     *utf::precondition(python_clients_available)) {
  UpperServer server({"--tcp", "127.0.0.1:0", "--framed", "127.0.0.1:0", "--udp", "127.0.0.1:0",
                      "--max-frame", "1024"});
  auto port = [&](const char* protocol) { return std::to_string(server.endpoint(protocol).port); };
  struct Case {
    std::string script, protocol;
    std::vector<std::string> extra;
  };
  const std::vector<Case> cases{
      {"udp_client.py", "udp", {}},
      {"tcp_client.py", "tcp", {}},
      {"framed_client.py", "framed", {}},
      {"framed_client.py", "framed", {"--byte-by-byte", "--delay-ms", "0"}},
      {"framed_client.py", "framed", {"--sticky"}},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args{client_script(c.script), "--host", "127.0.0.1", "--port",
                                  port(c.protocol.c_str())};
    args.insert(args.end(), c.extra.begin(), c.extra.end());
    args.insert(args.end(), {"hello", "world"});
    Finished run = run_to_end("python3", args);
    BOOST_TEST_CONTEXT(run.description) {
      BOOST_TEST(status_or_running(run.status) == 0);
      BOOST_TEST(run.out.find("HELLO") != std::string::npos);
      BOOST_TEST(run.out.find("WORLD") != std::string::npos);
    }
  }
  // The refusal of an oversized frame, as the client reports it.
  Finished refused =
      run_to_end("python3", {client_script("framed_client.py"), "--host", "127.0.0.1", "--port",
                             port("framed"), "--raw-length", "2000"});
  BOOST_TEST(refused.out.find("closed") != std::string::npos, refused.description);
}
