// The scoreboard written over while a real server runs, as a handler with a
// wild pointer (or anyone of the same user) could: the master keeps
// supervising and its /metrics reports the damage instead of crashing or
// spinning; prefork-top reports it too. And what --stats refuses: names
// shm_open(3) would, a file that is not the server's to replace.
#define BOOST_TEST_MODULE integration_shared_memory
#include <boost/test/unit_test.hpp>

#include <prefork/core/scoreboard_layout.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "clients.hpp"
#include "files.hpp"
#include "fixture.hpp"

using namespace prefork::test;
namespace json = boost::json;

namespace {

// /dev/shm/NAME mapped read-write, as a scribbler maps it.
class Scribbler {
 public:
  explicit Scribbler(const std::string& name) {
    fd_ = ::open(shm_path(name).c_str(), O_RDWR | O_CLOEXEC);
    BOOST_TEST_REQUIRE(fd_ >= 0, "open " << shm_path(name) << ": " << std::strerror(errno));
    struct stat st {};
    BOOST_TEST_REQUIRE(::fstat(fd_, &st) == 0);
    size_ = static_cast<std::size_t>(st.st_size);
    base_ = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    BOOST_TEST_REQUIRE(base_ != MAP_FAILED);
  }
  ~Scribbler() {
    ::munmap(base_, size_);
    ::close(fd_);
  }
  prefork::Header& header() { return *static_cast<prefork::Header*>(base_); }
  prefork::Slot& slot(unsigned i) {
    return reinterpret_cast<prefork::Slot*>(static_cast<char*>(base_) + sizeof(prefork::Header))[i];
  }
  // Random bytes over a slot, all but its writer mutex (its worker is killed
  // right after; the bytes it left stay for the master to fold).
  void garbage_over_slot(unsigned i) {
    char* at = reinterpret_cast<char*>(&slot(i));
    const std::size_t lock = reinterpret_cast<char*>(&slot(i).writer_lock) - at;
    const std::size_t after = lock + sizeof slot(i).writer_lock;
    random_bytes(at, lock);
    random_bytes(at + after, sizeof(prefork::Slot) - after);
    // A worker asking to retire is obeyed (it can write only its own slot):
    // a lawful request, not the damage under test, and it would race the
    // test's kill of the victim.
    slot(i).retire_requested.store(0);
  }

 private:
  void random_bytes(char* at, std::size_t n) {
    for (std::size_t k = 0; k < n; ++k) {
      state_ ^= state_ << 13, state_ ^= state_ >> 7, state_ ^= state_ << 17;
      at[k] = static_cast<char>(state_);
    }
  }
  int fd_ = -1;
  void* base_ = nullptr;
  std::size_t size_ = 0;
  std::uint64_t state_ = 0x2545f4914f6cdd1dull;
};

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_scribbled_scoreboard_leaves_the_master_supervising) {
  UpperServer server({"--framed", "127.0.0.1:0", "--metrics", "127.0.0.1:0"});
  const Endpoint metrics = metrics_endpoint(server, 1);
  const std::vector<prefork::SlotSnapshot> ready = server.ready_snapshot().slots;
  BOOST_TEST_REQUIRE(ready.size() >= 2u);
  const pid_t victim = ready[0].pid;
  BOOST_TEST_REQUIRE(victim > 0);

  Scribbler scribbler(server.stats_name());
  prefork::Header& h = scribbler.header();
  h.slots_in_use.store(1'000'000);
  h.sequence.store(12345);  // odd: a master "folding" for ever
  scribbler.garbage_over_slot(0);

  // prefork-top neither crashes nor shows the garbage as a healthy server.
  const Finished top = run_to_end(bin_path("prefork-top"), {"--once", server.stats_name()});
  BOOST_TEST(status_or_running(top.status) == 1, top.description);
  BOOST_TEST(contains(top.out, "CORRUPT: stats segment " + server.stats_name() + " is corrupt"),
             top.description);
  const Finished json_top =
      run_to_end(bin_path("prefork-top"), {"--json", "--once", server.stats_name()});
  BOOST_TEST(status_or_running(json_top.status) == 1, json_top.description);
  BOOST_TEST(contains(json_top.err, "is corrupt"), json_top.description);

  auto scribble_header = [&h] {
    h.slot_count = 40;  // far past the segment's end
    h.slots_in_use.store(1'000'000);
    h.listener_count = 9999;
    h.sequence.store(12345);
  };
  scribble_header();
  // A reader that opens it now refuses it, with a message.
  const Finished late = run_to_end(bin_path("prefork-top"), {"--once", server.stats_name()});
  BOOST_TEST(status_or_running(late.status) == 1, late.description);
  BOOST_TEST(contains(late.err, "has the wrong size"), late.description);

  // The master answers at once, the damage reported: it fixed its counts
  // before any worker ran.
  const std::string text = http(metrics, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
  BOOST_TEST(text.rfind("HTTP/1.1 200 OK\r\n", 0) == 0u, text.substr(0, 300));
  BOOST_TEST(contains(text, "\nprefork_scoreboard_corrupt 1\n"), text.substr(0, 300));
  const std::string stats = http(metrics, "GET /stats.json HTTP/1.0\r\n\r\n");
  const json::value doc = json::parse(body_of(stats));
  BOOST_TEST(contains(json::value_to<std::string>(doc.at("corrupt")), "slot count is 40, was"));

  // The worker of the scribbled slot dies; the master replaces it while its
  // header's sequence is kept odd and /metrics is scraped without a pause.
  BOOST_TEST_REQUIRE(::kill(victim, SIGKILL) == 0);
  const auto deadline = std::chrono::steady_clock::now() + state_timeout;
  bool replaced = false;
  while (!replaced && std::chrono::steady_clock::now() < deadline) {
    scribble_header();
    const std::string response = http(metrics, "GET /stats.json HTTP/1.0\r\n\r\n");
    BOOST_TEST_REQUIRE(response.rfind("HTTP/1.1 200 OK\r\n", 0) == 0u, response.substr(0, 300));
    const json::value now = json::parse(body_of(response));
    unsigned serving = 0;
    bool victim_seen = false;
    for (const json::value& w : now.at("workers").as_array()) {
      const auto pid = w.at("pid").to_number<std::int64_t>();
      victim_seen = victim_seen || pid == victim;
      if (w.at("state").as_string() == "ready" && pid > 0) ++serving;
    }
    replaced = !victim_seen && serving >= ready.size();
  }
  BOOST_TEST(replaced, server.process().stderr_text());
  TcpClient client = TcpClient::connect(server.endpoint("framed"));
  BOOST_TEST(client.request_frame("still") == "STILL");
  BOOST_TEST(server.process().running());
}

// Any process of the master's user may cut the segment (`truncate -s 0
// /dev/shm/NAME`) while the master, its workers and a prefork-top have it
// mapped: touching the lost pages raises SIGBUS. The master survives it,
// gives the segment its size back (zero-filled: readers report it corrupt)
// and goes on supervising; prefork-top reports it instead of dying.
BOOST_AUTO_TEST_CASE(a_segment_truncated_under_the_server_leaves_it_serving_and_reported) {
  UpperServer server({"--framed", "127.0.0.1:0", "--metrics", "127.0.0.1:0"});
  const Endpoint metrics = metrics_endpoint(server, 1);
  const std::vector<prefork::SlotSnapshot> ready = server.ready_snapshot().slots;
  BOOST_TEST_REQUIRE(!ready.empty());
  const pid_t victim = ready[0].pid;
  BOOST_TEST_REQUIRE(victim > 0);
  // The master must have seen its workers ready before the cut zeroes what
  // they wrote: a later turn of its once-a-second figures than the first
  // after the ready snapshot.
  const std::uint64_t ready_ns = server.ready_snapshot().taken_ns;
  std::uint64_t first_turn = 0;
  BOOST_TEST_REQUIRE(server
                         .when([&](const prefork::ScoreboardSnapshot& s) {
                           if (s.metrics_updated_ns <= ready_ns) return false;
                           if (first_turn == 0) first_turn = s.metrics_updated_ns;
                           return s.metrics_updated_ns > first_turn;
                         })
                         .has_value());
  // A prefork-top that has the segment mapped when it is cut.
  ServerProcess top(bin_path("prefork-top"), {"--json", "--interval", "0.05", server.stats_name()});
  BOOST_TEST_REQUIRE(top.next_line(state_timeout).has_value(), top.describe());

  BOOST_TEST_REQUIRE(::truncate(shm_path(server.stats_name()).c_str(), 0) == 0);
  // prefork-top goes on refreshing, and says it.
  bool reported = false;
  while (!reported) {
    const std::optional<std::string> line = top.next_line(state_timeout);
    BOOST_TEST_REQUIRE(line.has_value(), top.describe());
    reported = contains(*line, "is corrupt: it was truncated") || contains(*line, "magic is 0");
  }
  // The master: its /metrics answers, the damage reported...
  const std::string text = http(metrics, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
  BOOST_TEST(text.rfind("HTTP/1.1 200 OK\r\n", 0) == 0u, text.substr(0, 300));
  BOOST_TEST(contains(text, "\nprefork_scoreboard_corrupt 1\n"), text.substr(0, 300));
  BOOST_TEST(logged_when(server, "was truncated under the master: gave it its"),
             server.process().stderr_text());
  // ...and it still supervises: a worker killed now is folded in and replaced.
  ::kill(victim, SIGKILL);
  // (It may have died of its own write to the cut segment first.)
  const std::string restarted = "(pid " + std::to_string(victim) + ") was killed by SIG";
  BOOST_TEST(logged_when(server, restarted), server.process().stderr_text());
  TcpClient client = TcpClient::connect(server.endpoint("framed"));
  BOOST_TEST(client.request_frame("still") == "STILL");
  BOOST_TEST(server.process().running());
  BOOST_TEST(http(metrics, "GET /metrics HTTP/1.0\r\n\r\n").rfind("HTTP/1.1 200 OK\r\n", 0) == 0u);

  // A reader that opens it now refuses it with a message naming it, not a
  // signal. Which message depends on whether the master has put the size
  // back meanwhile (at its next look): empty, zero-filled, or not settled.
  BOOST_REQUIRE(::truncate(shm_path(server.stats_name()).c_str(), 0) == 0);
  const Finished once = run_to_end(bin_path("prefork-top"), {"--once", server.stats_name()});
  BOOST_TEST(status_or_running(once.status) == 1, once.description);
  BOOST_TEST(contains(once.err, server.stats_name()), once.description << once.err);
  BOOST_TEST(!top.wait_exit(0ms).has_value(), top.describe());  // still running: no SIGBUS
}

BOOST_AUTO_TEST_CASE(stats_names_the_kernel_refuses_are_usage_errors) {
  for (const std::string name : {".", "..", "a/b"}) {
    const Finished run = run_to_end(bin_path("upper_server"),
                                    server_arguments(name, 1, {"--framed", "127.0.0.1:0"}));
    BOOST_TEST(status_or_running(run.status) == 2, run.description);
    BOOST_TEST(contains(run.err, "--stats wants a file name in /dev/shm"), run.description);
  }
}

BOOST_AUTO_TEST_CASE(a_foreign_file_at_the_stats_name_is_left_alone) {
  ShmGuard shm(unique_stats_name());
  std::ofstream(shm_path(shm.name())) << "not a scoreboard\n";
  const Finished run = run_to_end(bin_path("upper_server"),
                                  server_arguments(shm.name(), 1, {"--framed", "127.0.0.1:0"}));
  BOOST_TEST(status_or_running(run.status) == 1, run.description);
  BOOST_TEST(contains(run.err, "exists and is not a prefork scoreboard; not replacing it"),
             run.description);
  BOOST_TEST(file_text(shm_path(shm.name())) == "not a scoreboard\n");
}

// A master killed without a chance to remove its segment: prefork-top says
// so, and a new master of the same user takes the name over.
BOOST_AUTO_TEST_CASE(a_dead_masters_segment_is_marked_and_replaced) {
  UpperServer server({"--framed", "127.0.0.1:0"}, {.workers = 1});
  const pid_t master = server.pid();
  server.process().signal(SIGKILL);
  BOOST_TEST_REQUIRE(status_or_running(server.process().wait_exit(state_timeout)) != still_running);
  BOOST_TEST_REQUIRE(shm_exists(server.stats_name()));

  const Finished top = run_to_end(bin_path("prefork-top"), {"--once", server.stats_name()});
  BOOST_TEST(status_or_running(top.status) == 1, top.description);
  BOOST_TEST(contains(top.out, "MASTER GONE: master " + std::to_string(master) + " is gone"),
             top.description);
  const Finished json_top =
      run_to_end(bin_path("prefork-top"), {"--json", "--once", server.stats_name()});
  BOOST_TEST(status_or_running(json_top.status) == 1, json_top.description);
  BOOST_TEST(contains(json_top.err, "is gone"), json_top.description);

  ServerProcess next(bin_path("upper_server"),
                     server_arguments(server.stats_name(), 1, {"--framed", "127.0.0.1:0"}));
  BOOST_TEST(next.wait_for_listening(1, start_timeout).size() == 1u, next.describe());
  next.signal(SIGTERM);  // its output read to the end
  BOOST_TEST(status_or_running(next.wait_exit(tsan_stop_timeout)) == 0, next.describe());
  BOOST_TEST(contains(next.stderr_text(), "which is gone; replaced it with a new one"),
             next.describe());
}
