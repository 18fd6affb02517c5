// Recycling after --max-requests, the worker's side: once a worker has
// started its N-th request it sets its slot's retire_requested, once, and
// goes on serving (the master starts a replacement, then stops it).
//
// First the counting itself (SlotWriter), then the real worker runtime of
// every model, run in a child of this test with a hand-made hand-off (a
// scoreboard and a listener of the test's own, PREFORK_MAX_REQUESTS as the
// master would pass it), driven by a client over loopback. Last, such a
// worker leading its own process group, as the master's starters make it.
#define BOOST_TEST_MODULE recycling
#include <boost/test/unit_test.hpp>

#include "clients.hpp"

#include <prefork/core/scoreboard_segment.hpp>
#include <prefork/core/slot_writer.hpp>
#include <prefork/core/worker_params.hpp>
#include <prefork/handler.hpp>
#include <prefork/listener.hpp>
#include <prefork/log.hpp>
#include <prefork/models.hpp>
#include <prefork/workers/runtime.hpp>

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace prefork;
using namespace prefork::test;

namespace {

// A one-slot scoreboard of the test's own, removed however the test ends.
struct Board {
  ShmGuard guard{unique_stats_name()};
  std::vector<Listener> listeners;
  Scoreboard scoreboard;
  explicit Board(std::vector<Listener> opened = {})
      : listeners(std::move(opened)), scoreboard(Scoreboard::create(guard.name(), 1, listeners)) {}
  Slot& slot() { return scoreboard.slot(0); }
  bool retire_requested() { return slot().retire_requested.load() != 0; }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(counting)

BOOST_AUTO_TEST_CASE(the_nth_request_asks_for_retirement_and_not_one_before) {
  Board board;
  SlotWriter writer(board.slot());
  writer.started(1);
  writer.retire_after(3);
  writer.request(0);
  writer.request(0);
  BOOST_TEST(!board.retire_requested());
  writer.request(0);
  BOOST_TEST(board.retire_requested());
  // Once: later requests, or another ask, change nothing.
  writer.request(0);
  BOOST_TEST(!writer.request_retire());
  BOOST_TEST(board.retire_requested());
}

BOOST_AUTO_TEST_CASE(no_limit_never_asks) {
  Board board;
  SlotWriter writer(board.slot());
  writer.started(1);
  for (int i = 0; i < 10'000; ++i) writer.request(0);
  BOOST_TEST(!board.retire_requested());
}

BOOST_AUTO_TEST_CASE(counted_with_the_counters_off_too) {
  Board board;
  SlotWriter writer(board.slot(), false, false);  // --worker-stats off
  writer.started(1);
  writer.retire_after(2);
  writer.request(0);
  BOOST_TEST(!board.retire_requested());
  writer.request(0);
  BOOST_TEST(board.retire_requested());
}

BOOST_AUTO_TEST_CASE(count_toward_retire_counts_as_a_request_does) {
  Board board;
  SlotWriter writer(board.slot(), true);
  writer.started(1);
  writer.retire_after(2);
  writer.count_toward_retire();
  BOOST_TEST(!board.retire_requested());
  writer.count_toward_retire();
  BOOST_TEST(board.retire_requested());
}

// The thread models share one writer: the count is the process's, not each
// thread's (4 x 250 reach 1,000; they never reach 1,001).
BOOST_AUTO_TEST_CASE(threads_sharing_a_writer_count_together) {
  for (std::uint64_t limit : {1'000u, 1'001u}) {
    BOOST_TEST_CONTEXT("limit " << limit) {
      Board board;
      SlotWriter writer(board.slot(), true);
      writer.started(1);
      writer.retire_after(limit);
      std::vector<std::thread> threads;
      for (int t = 0; t < 4; ++t)
        threads.emplace_back([&writer] {
          for (int i = 0; i < 250; ++i) writer.request(0);
        });
      for (auto& thread : threads) thread.join();
      BOOST_TEST(board.retire_requested() == (limit == 1'000u));
    }
  }
}

BOOST_AUTO_TEST_CASE(a_new_worker_in_the_slot_starts_unretired) {
  Board board;
  SlotWriter old_worker(board.slot());
  old_worker.started(1);
  BOOST_TEST(old_worker.request_retire());
  BOOST_TEST(board.retire_requested());
  SlotWriter new_worker(board.slot());
  new_worker.started(2);
  BOOST_TEST(!board.retire_requested());
}

BOOST_AUTO_TEST_SUITE_END()

namespace {

// Answers every frame with its payload.
class Echo final : public Handler {
 public:
  void handle(const Request&, std::string_view data, Reply& reply) override { reply.send(data); }
};

constexpr std::uint64_t max_requests = 3;

// The real worker runtime in a child of this test, as a forked worker of a
// master would run it (the test is its master: it is the parent). Killed
// and reaped however the test ends.
class WorkerChild {
 public:
  // `own_group`: it leads a process group of its own, as the master's
  // starters make their workers do.
  WorkerChild(Board& board, Model model, bool own_group = false) {
    WorkerParams params{
        .slot = 0,
        .generation = 1,
        .master_pid = ::getpid(),
        .stats_name = board.guard.name(),
        .model = model,
        .accept = facts(model).default_accept,
        .threads = 2,
        .graceful_timeout = std::chrono::milliseconds(5'000),
        .idle_timeout = std::chrono::milliseconds(75'000),
        .read_timeout = std::chrono::milliseconds(60'000),
        .write_timeout = std::chrono::milliseconds(60'000),
        .max_requests = max_requests,
        .worker_stats = true,
        .log = {},
        .run_as = std::nullopt,
    };
    if (params.accept == Accept::lock) init_accept_lock(board.scoreboard.header());
    pid_ = ::fork();
    BOOST_TEST_REQUIRE(pid_ >= 0, "fork failed");
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (own_group && ::setpgid(0, 0) != 0) ::_exit(98);
      set_log_role("worker 0");
      Echo handler;
      int status = 1;
      try {
        status = run_worker(params,
                            WorkerResources{.listeners = board.listeners,
                                            .slot = board.slot(),
                                            .header = board.scoreboard.header()},
                            handler);
      } catch (...) {
      }
      ::_exit(status);
    }
  }
  ~WorkerChild() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  WorkerChild(const WorkerChild&) = delete;
  WorkerChild& operator=(const WorkerChild&) = delete;

  pid_t pid() const noexcept { return pid_; }
  // Stops it with SIGTERM (sent to its process group when `group`); its
  // exit status (or -1 when it does not exit).
  int stop(bool group = false) {
    ::kill(group ? -pid_ : pid_, SIGTERM);
    int status = 0;
    const bool exited =
        wait_until([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; }, 10'000ms);
    if (!exited) return -1;
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  pid_t pid_ = -1;
};

// One request on `client`, or on a connection of its own each time
// (fork-per-connection counts connections: each child serves one).
struct Requests {
  Endpoint endpoint;
  bool connection_each;
  std::optional<TcpClient> client;
  std::string send(const std::string& payload) {
    if (connection_each || !client) client.emplace(TcpClient::connect(endpoint));
    return client->request_frame(payload);
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(worker_runtime)

BOOST_AUTO_TEST_CASE(every_model_asks_after_its_nth_request_and_keeps_serving) {
  for (Model model : {Model::event, Model::iterative, Model::prefork, Model::fork_per_connection,
                      Model::thread_per_connection, Model::prethreaded, Model::hybrid}) {
    BOOST_TEST_CONTEXT(facts(model).name) {
      Board board(open_listeners({{Protocol::framed, Address::parse("127.0.0.1:0")}}));
      WorkerChild worker(board, model);
      BOOST_TEST_REQUIRE(
          wait_until([&] { return board.slot().state.load() == WorkerState::ready; }, 10'000ms));
      Requests requests{.endpoint = {"framed", "127.0.0.1", board.listeners[0].local.port()},
                        .connection_each = model == Model::fork_per_connection,
                        .client = std::nullopt};
      // A request is counted when it starts, before its reply is sent: each
      // answer says where the count stands.
      for (std::uint64_t i = 1; i < max_requests; ++i) {
        std::string payload = "r";
        payload += std::to_string(i);
        BOOST_TEST_REQUIRE(requests.send(payload) == payload);
        BOOST_TEST(!board.retire_requested(), "asked after " << i << " requests");
      }
      BOOST_TEST_REQUIRE(requests.send("last") == "last");
      BOOST_TEST(board.retire_requested(), "not asked after " << max_requests << " requests");
      // It keeps serving, as the same process, until the master stops it.
      BOOST_TEST(requests.send("more") == "more");
      BOOST_TEST(requests.send("again") == "again");
      BOOST_TEST(board.retire_requested());
      BOOST_TEST(board.slot().pid.load() == worker.pid());
      BOOST_TEST((board.slot().state.load() == WorkerState::ready));
      requests.client.reset();
      BOOST_TEST(worker.stop() == 0);
    }
  }
}

// Workers run in their own process group so that the master's stop reaches
// their children: a fork-per-connection worker that leads one keeps its
// connection children in it, and a graceful stop sent to the group ends
// them all in order.
BOOST_AUTO_TEST_CASE(a_worker_leading_its_process_group_keeps_its_children_in_it) {
  Board board(open_listeners({{Protocol::framed, Address::parse("127.0.0.1:0")}}));
  WorkerChild worker(board, Model::fork_per_connection, true);
  BOOST_TEST_REQUIRE(
      wait_until([&] { return board.slot().state.load() == WorkerState::ready; }, 10'000ms));
  BOOST_TEST(::getpgid(worker.pid()) == worker.pid());
  auto client =
      TcpClient::connect(Endpoint{"framed", "127.0.0.1", board.listeners[0].local.port()});
  BOOST_TEST_REQUIRE(client.request_frame("hello") == "hello");
  const auto children = children_of(worker.pid());
  BOOST_TEST_REQUIRE(children.size() == 1u);
  BOOST_TEST(::getpgid(children[0]) == worker.pid());
  // The idle connection is closed by its child, which exits; so does the worker.
  BOOST_TEST(worker.stop(true) == 0);
  BOOST_TEST(client.closed_by_peer());
  BOOST_TEST(wait_exited(children[0], 10'000ms));
}

BOOST_AUTO_TEST_SUITE_END()
